"""End to end on real parts: `pinlanding run` (ingest -> dbt build -> GX -> MLflow) on a small slice
of the real catalog plus hand-made bad input, in a temporary data directory.

Embedded Derby admits one process at a time, so every subprocess step runs first (module fixture),
and the in-process SparkSession for assertions is opened only after they have exited.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.integration.feed_builder import build_feed

pytestmark = pytest.mark.integration

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCHEMA = "pinlanding"
LLM_SAMPLE = 6  # products labelled by the real llama.cpp server (Gemma-3-270M) in each run


def _run(args, env, expect_ok=True):
    proc = subprocess.run(args, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=900)
    if expect_ok and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, real_catalog):
    root = tmp_path_factory.mktemp("pipeline")
    expected = build_feed(real_catalog, root / "catalog")
    env = dict(os.environ, PINLANDING_DATA_DIR=str(root / "data"), PINLANDING_CATALOG_DIR=str(root / "catalog"),
               DBT_TARGET_PATH=str(root / "target"), DBT_LOG_PATH=str(root / "logs"),
               MLFLOW_TRACKING_URI="", PYSPARK_PYTHON=sys.executable,
               PINLANDING_LLM_BACKEND="local", PINLANDING_LLM_SAMPLE_SIZE=str(LLM_SAMPLE))
    env.pop("MLFLOW_TRACKING_URI")
    # this feed's photos are bad on purpose; its 206 products need a lower frequency filter
    # no text_max_tokens: `pinlanding run` builds the text-feature store at tiny.yaml's limit (32), then the champion's
    lenient = ["--min-image-valid-rate", "0.5", "--vars", "{min_attribute_products: 3, min_products: 3}",
               "--train-config", str(PROJECT_DIR / "ml/configs/tiny.yaml")]
    first = _run([BIN / "pinlanding", "run", *lenient], env)
    between_runs = datetime.now(timezone.utc).replace(tzinfo=None)
    outputs = {
        "first": first,
        "second": _run([BIN / "pinlanding", "run", *lenient], env),
        "strict_check": _run([BIN / "pinlanding", "check"], env, expect_ok=False),
        "show": _run([BIN / "dbt", "show", "--inline", "select count(*) as n from {{ ref('stg_products') }}",
                      "--output", "json"], env),
        "docs": _run([BIN / "dbt", "docs", "generate", "--vars", "{min_attribute_products: 3, min_products: 3}"], env),
        "predict": _run([BIN / "pinlanding", "predict", "--feed", root / "catalog/products.jsonl.gz",
                         "--images", root / "catalog/images", "--top-k", "5", "--out", root / "preds.jsonl"], env),
        "predict_image_only": _run([BIN / "pinlanding", "predict", "--feed", root / "catalog/products.jsonl.gz",
                                    "--images", root / "catalog/images", "--top-k", "3", "--image-only",
                                    "--out", root / "preds_image.jsonl"], env),
        "vocabulary": _run([BIN / "pinlanding", "vocabulary", "--out", root / "vocab.jsonl"], env),
        # `pinlanding run` leaves dbt unit tests out of its builds: they run here (last dbt command,
        # so target/run_results.json is theirs)
        "unit_tests": _run([BIN / "dbt", "test", "--select", "test_type:unit",
                            "--vars", "{min_attribute_products: 3, min_products: 3}"], env, expect_ok=False),
    }
    os.environ.update(PINLANDING_DATA_DIR=env["PINLANDING_DATA_DIR"], PYSPARK_PYTHON=sys.executable)
    return {"root": root, "env": env, "expected": expected, "out": outputs, "between_runs": between_runs}


@pytest.fixture(scope="module")
def spark(pipeline):
    from pinlanding.warehouse import spark_session, spark_settings

    spark_settings.cache_clear()
    session = spark_session("local")
    yield session
    # Static settings (this data dir's metastore) fix the session: later modules need their own.
    session.stop()


def _counts(spark, sql) -> dict:
    return {r[0]: r[1] for r in spark.sql(sql).collect()}


def test_every_line_is_staged_or_quarantined_with_its_reason(spark, pipeline):
    expected = pipeline["expected"]
    summary = spark.table(f"{SCHEMA}.catalog_load_summary").collect()[0]
    assert summary.lines_landed == expected["lines_landed"]
    assert summary.products_staged == expected["products_staged"]
    assert summary.lines_quarantined == sum(expected["quarantine_reasons"].values())
    reasons = _counts(spark, f"select reject_reason, count(*) from {SCHEMA}.quarantine_products group by 1")
    assert reasons == expected["quarantine_reasons"]
    assert spark.sql(f"select * from {SCHEMA}.quarantine_products where reject_detail is null").count() == 0


def test_duplicate_ids_keep_the_last_line(spark, pipeline):
    product_id, title = pipeline["expected"]["conflict_winner"]
    rows = spark.sql(f"select title from {SCHEMA}.stg_products where product_id = '{product_id}'").collect()
    assert [r.title for r in rows] == [title]


def test_bad_photos_are_rejected_and_their_products_stay_text_only(spark, pipeline):
    expected = pipeline["expected"]
    reasons = _counts(spark, f"select reject_reason, count(*) from {SCHEMA}.quarantine_product_images group by 1")
    assert reasons == expected["image_reasons"]
    statuses = _counts(spark, f"select image_status, count(*) from {SCHEMA}.int_products group by 1")
    assert statuses["valid"] == expected["images_valid"]
    assert statuses["rejected"] == sum(expected["image_reasons"].values())
    leaked = spark.sql(f"select * from {SCHEMA}.int_products where image_status != 'valid' and image_path is not null")
    assert leaked.count() == 0
    valid = spark.table(f"{SCHEMA}.stg_product_images").where("image_status = 'valid'").collect()
    assert all((r.width, r.height) == (224, 224) for r in valid) and all(len(r.sha256) == 64 for r in valid)


def test_python_model_is_a_table_and_ref_able_downstream(spark):
    detail = {r.col_name: r.data_type for r in spark.sql(f"describe table extended {SCHEMA}.stg_product_images").collect()}
    assert detail["Type"] == "MANAGED" and "parquet" in detail["Provider"].lower()
    # int_products (SQL) joins the Python model's output
    assert spark.sql(f"select count(*) from {SCHEMA}.int_products where image_status = 'rejected'").first()[0] > 0


def test_static_settings_took_effect(spark, pipeline):
    data = pipeline["root"] / "data"
    assert (data / "metastore_db").is_dir()
    location = {r.col_name: r.data_type for r in spark.sql(f"describe table extended {SCHEMA}.stg_products").collect()}["Location"]
    assert location.startswith(f"file:{data}/warehouse/"), location


def test_a_session_running_with_other_static_settings_is_an_error(spark):
    from dbt.adapters.spark_session.connections import get_or_create_session
    from dbt_common.exceptions import DbtRuntimeError

    with pytest.raises(DbtRuntimeError, match="spark.sql.warehouse.dir"):
        get_or_create_session({"spark.sql.warehouse.dir": "/somewhere/else"})
    assert get_or_create_session({"spark.sql.shuffle.partitions": "3"}) is spark  # runtime: applied
    assert spark.conf.get("spark.sql.shuffle.partitions") == "3"


def test_rerun_is_idempotent(spark, pipeline):
    out = pipeline["out"]
    assert "feed unchanged" in out["second"].stdout
    assert spark.table("pinlanding_raw.raw_feed_loads").count() == 1
    assert spark.table(f"{SCHEMA}.stg_products").count() == pipeline["expected"]["products_staged"]


def test_checkpoint_fails_the_build_when_violated(pipeline):
    strict = pipeline["out"]["strict_check"]
    assert strict.returncode == 1, strict.stdout
    assert "FAIL  expect_column_values_to_be_in_set" in strict.stdout and "image_valid" in strict.stdout
    assert "checkpoint staged_catalog: FAILED" in strict.stdout
    assert "checkpoint staged_catalog: PASSED" in pipeline["out"]["first"].stdout
    assert (pipeline["root"] / "data/gx/uncommitted/data_docs/local_site/index.html").is_file()


def test_mlflow_run_is_logged(pipeline):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{pipeline['root'] / 'data/mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["pinlanding-platform"])
    assert len(runs) == 2
    assert set(runs["metrics.products_staged"]) == {pipeline["expected"]["products_staged"]}
    # the training run (first `pinlanding run`, no champion yet) logs the recall a perfect scorer
    # would reach beside the recalls themselves
    training = mlflow.search_runs(experiment_names=["pinlanding-dual-encoder"])
    assert len(training) == 1
    run = training.iloc[0]
    for prefix in ("ceiling.test", "ceiling.test_with_photo"):
        assert 0 < run[f"metrics.{prefix}.recall_at_10"] <= 1
    assert "ceiling (a perfect scorer)" in pipeline["out"]["first"].stdout  # the comparison table


def test_dbt_show_and_docs_answer_from_the_warehouse(pipeline):
    shown = pipeline["out"]["show"].stdout
    payload = json.loads(shown[shown.index("{"):shown.rindex("}") + 1])
    assert payload["show"][0]["n"] == pipeline["expected"]["products_staged"]
    catalog = json.loads((pipeline["root"] / "target/catalog.json").read_text())
    assert "model.pinlanding.stg_products" in catalog["nodes"]


def test_dbt_unit_tests_pass_outside_the_production_build(pipeline):
    assert "unit_test" not in pipeline["out"]["first"].stdout  # not in `pinlanding run`'s builds
    unit = pipeline["out"]["unit_tests"]
    assert unit.returncode == 0, unit.stdout[-6000:]
    results = json.loads((pipeline["root"] / "target/run_results.json").read_text())["results"]
    ran = [r for r in results if r["unique_id"].startswith("unit_test.")]
    declared = sum(len(re.findall(r"^  - name:", p.read_text(), re.M))
                   for p in (PROJECT_DIR / "models").rglob("*unit_tests.yml"))
    assert len(ran) == declared >= 10 and all(r["status"] == "pass" for r in ran)


def test_compiled_model_runs_as_a_databricks_notebook_would(spark, pipeline):
    """dbt-databricks uploads the compiled code and runs it with only `spark` defined; do the same."""
    compiled = next((pipeline["root"] / "target/run").rglob("stg_product_images.py")).read_text()
    before = spark.table(f"{SCHEMA}.stg_product_images").count()
    exec(compile(compiled, "notebook", "exec"), {"spark": spark})
    assert spark.table(f"{SCHEMA}.stg_product_images").count() == before


def test_local_llm_labels_the_sample_once_and_the_rerun_makes_no_calls(spark):
    cache = spark.table(f"{SCHEMA}.llm_extraction_cache").collect()
    assert len(cache) == LLM_SAMPLE  # second run added nothing: every key was cached
    assert {r.backend for r in cache} == {"local"} and {r.model for r in cache} == {"gemma-3-270m"}
    ok = [r for r in cache if r.status == "ok"]
    assert len(ok) == LLM_SAMPLE, [r.error for r in cache]
    assert any(json.loads(r.attributes_json) for r in ok)
    llm_rows = spark.sql(f"select count(*) from {SCHEMA}.product_attributes_extracted where source_backend = 'local'").first()[0]
    assert llm_rows > 0


def test_vocabulary_is_curated_with_stable_ids(spark):
    import hashlib

    vocab = spark.table(f"{SCHEMA}.attribute_vocabulary").collect()
    assert len(vocab) > 20
    for row in vocab:
        digest = hashlib.sha256(f"{row.attribute_type}:{row.canonical_key}".encode()).hexdigest()[:16]
        assert row.attribute_id == f"attr_{digest}"
    types = {r.attribute_type for r in vocab if r.status == "active"}
    assert {"article_type", "colour", "gender"} <= types
    curated = spark.sql(f"""
        select count(distinct p.product_id) from {SCHEMA}.product_attributes_curated as p
        where p.attribute_type = 'article_type'""").first()[0]
    assert curated > 150  # most of the 206 products carry a frequent article type
    dropped = spark.table(f"{SCHEMA}.attribute_long_tail").where("drop_reason is null").count()
    assert dropped == 0


def test_first_run_trains_a_champion_and_the_second_reuses_it(pipeline):
    assert "no champion model in the registry: training one" in pipeline["out"]["first"].stdout
    assert "champion model found in the registry; not training" in pipeline["out"]["second"].stdout
    # the text-feature store's token limit: the config's before a champion exists, then the champion's
    assert "text-feature store at 32 tokens (from tiny.yaml)" in pipeline["out"]["first"].stdout
    assert "text-feature store at 32 tokens (the champion model's)" in pipeline["out"]["second"].stdout
    assert "the text-feature store holds nothing under" not in pipeline["out"]["first"].stdout


def test_scores_are_incremental_and_assignments_respect_single_valued_types(spark, pipeline):
    scores = spark.table(f"{SCHEMA}.product_attribute_scores")
    products = spark.table(f"{SCHEMA}.int_products").count()
    assert scores.select("product_id").distinct().count() == products
    assert scores.groupBy("product_id").count().where("count != 10").count() == 0
    # the second run scored nothing: every row is from the first run
    assert scores.agg({"scored_at": "max"}).first()[0] < pipeline["between_runs"]
    # the text-feature store holds each distinct product text once, embedded in the first run only
    from ml.data import product_text, text_key

    texts = spark.table(f"{SCHEMA}.int_products").select("title", "description").toPandas()
    hashes = {text_key(product_text(t or "", d)) for t, d in zip(texts["title"], texts["description"])}
    features = spark.table(f"{SCHEMA}.product_text_features").toPandas()
    assert sorted(features["text_hash"]) == sorted(hashes)
    assert features["features"].map(len).eq(384).all()
    assert features["encoder"].str.endswith("/max32").all()  # the champion's (tiny.yaml) token limit
    assert features["embedded_at"].max() < pipeline["between_runs"]
    doubled = spark.sql(f"""
        select a.product_id, a.attribute_type from {SCHEMA}.product_attributes_assigned a
        join {SCHEMA}.attribute_types t using (attribute_type)
        where t.single_valued group by 1, 2 having count(*) > 1""")
    assert doubled.count() == 0


def test_predict_and_vocabulary_cli_write_the_documented_schema(pipeline):
    root = pipeline["root"]
    preds = [json.loads(line) for line in (root / "preds.jsonl").read_text().splitlines()]
    # every feed line that parses and has a product id (3 lines do not parse, 1 has no id)
    assert len(preds) == pipeline["expected"]["lines_landed"] - 4
    first = preds[0]
    assert set(first) == {"product_id", "attributes"} and len(first["attributes"]) == 5
    assert set(first["attributes"][0]) == {"attribute_id", "type", "value", "score"}
    image_only = [json.loads(line) for line in (root / "preds_image.jsonl").read_text().splitlines()]
    assert len(image_only) == pipeline["expected"]["images_valid"]  # only products with a valid photo
    vocab = [json.loads(line) for line in (root / "vocab.jsonl").read_text().splitlines()]
    assert vocab and set(vocab[0]) == {"attribute_id", "type", "value", "aliases"}
    assert {a["attribute_id"] for p in preds for a in p["attributes"]} <= {v["attribute_id"] for v in vocab}


# ------------------------------------------------------------------------------------ collections

def test_collections_have_stable_ids_titles_urls_and_a_status_each(spark):
    import hashlib

    rows = spark.table(f"{SCHEMA}.collections").collect()
    published = {r.collection_id: r for r in rows if r.status == "published"}
    assert published, "no collection was published"
    for r in rows:
        digest = hashlib.sha256("|".join(sorted(r.attribute_ids)).encode()).hexdigest()[:16]
        assert r.collection_id == f"col_{digest}"
        assert 1 <= r.n_attributes == len(set(r.attribute_types)) <= 3  # one value per type
        assert r.product_count >= 3  # min_products
        if r.status == "held_back":
            assert r.held_back_reason and r.held_back_detail and r.url_path is None
        else:
            assert r.title and r.quality_score >= 4
            assert r.url_path.startswith("/c/") and r.url_path.endswith(f"-{digest}/")
            assert r.canonical_collection_id in published
            assert r.first_published_at is not None and r.content_changed_at is not None
    titles = [r.title.lower() for r in rows if r.status != "held_back"]
    assert len(titles) == len(set(titles))


def test_feeds_put_full_matches_first_and_carry_evidence(spark):
    feeds = spark.sql(f"""
        select collection_id, count(*) as n, max(position) as last, min(position) as first,
               max(case when match_type = 'full' then position end) as last_full,
               min(case when match_type = 'partial' then position end) as first_partial,
               min(size(evidence)) as min_evidence
        from {SCHEMA}.collection_feeds group by collection_id""").collect()
    assert feeds
    for f in feeds:
        assert (f.first, f.last) == (1, f.n)
        assert f.first_partial is None or f.first_partial > f.last_full
        assert f.min_evidence >= 1
    # Every product carrying all of a collection's attributes is a full match ...
    full = spark.sql(f"""
        select c.collection_id, c.product_count, count(*) as full_matches
        from {SCHEMA}.collections c join {SCHEMA}.int_collection_feed_variants v using (collection_id)
        where v.match_type = 'full' group by 1, 2""").collect()
    assert full and all(r.full_matches == r.product_count for r in full)
    # ... and reaches the feed as a card or as a variant riding on a near-identical card: folding
    # near-duplicates into cards never loses a product.
    lost = spark.sql(f"""
        select v.* from {SCHEMA}.int_collection_feed_variants v left anti join
            (select collection_id, explode(array_union(array(product_id), variant_product_ids)) as product_id
             from {SCHEMA}.collection_feeds) f
            on v.collection_id = f.collection_id and v.product_id = f.product_id
        where v.match_type = 'full' and v.relevance_rank <= 500""")
    assert lost.count() == 0
    cards = spark.sql(f"select variant_count, size(variant_product_ids) as n from {SCHEMA}.collection_feeds").collect()
    assert cards and all(r.variant_count == r.n + 1 for r in cards)  # the card itself and its variants


def test_titles_come_from_the_local_llm_once_and_the_rerun_makes_no_calls(spark, pipeline):
    attempts = spark.table(f"{SCHEMA}.collection_title_attempts")
    assert attempts.count() > 0
    assert {r.model for r in attempts.select("model").distinct().collect()} == {"gemma-3-270m"}
    assert attempts.agg({"created_at": "max"}).first()[0] < pipeline["between_runs"]
    assert "collection titles:" in pipeline["out"]["first"].stdout
    assert "collection titles:" not in pipeline["out"]["second"].stdout
    finals = spark.sql(f"select collection_id, count(*) from {SCHEMA}.collection_title_attempts "
                       f"where final group by 1 having count(*) > 1")
    assert finals.count() == 0


def test_redirects_point_at_current_canonical_pages(spark):
    bad = spark.sql(f"""
        select r.* from {SCHEMA}.collection_redirects r
        left join {SCHEMA}.collections c on r.to_url_path = c.url_path and c.status = 'published'
        where r.to_url_path <> '/' and c.collection_id is null""")
    assert bad.count() == 0
    merged = spark.sql(f"select count(*) from {SCHEMA}.collections where status = 'duplicate'").first()[0]
    assert spark.sql(f"select count(*) from {SCHEMA}.collection_redirects where reason = 'merged'").first()[0] == merged


def test_collection_metrics_compare_with_the_baselines(spark):
    metrics = {(r.metric, r.dimension): r.value for r in spark.table(f"{SCHEMA}.collection_metrics").collect()}
    assert 0 <= metrics[("precision_at_10", "bm25_baseline")] <= 1
    assert 0.5 <= metrics[("precision_at_10", "pipeline")] <= 1
    assert metrics[("collections", "published")] > 0
    assert ("coverage_vs_facet_baseline", "gender x article_type x colour") in metrics
    history = spark.table(f"{SCHEMA}.collection_metrics_history")
    assert history.select("run_started_at").distinct().count() == 2  # one set per build


def test_run_publishes_the_site_incrementally(pipeline, spark):
    site = pipeline["root"] / "data" / "site"
    assert (site / "sitemap_index.xml.gz").is_file() and (site / "robots.txt").is_file()
    for r in spark.table(f"{SCHEMA}.collections").where("status = 'published'").collect():
        assert (site / r.url_path.strip("/") / "index.html").is_file()
    assert '"pages_written": 0' in pipeline["out"]["second"].stdout  # nothing changed between runs
