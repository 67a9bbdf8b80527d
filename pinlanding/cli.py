"""`pinlanding` command line: the pipeline's steps, and `run` for all of them in order.

Every step shares one SparkSession per process (embedded Derby admits one process at a time),
built from the same profiles.yml target dbt uses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pinlanding import settings


WRITERS = {"run", "ingest", "dbt", "train", "check", "publish"}  # commands that take the data dir's lock
_lock_held = False
_warehouse_recovered = False


def _spark(args):
    from pinlanding.warehouse import spark_session

    spark = spark_session(args.target)
    global _warehouse_recovered
    if _lock_held and not _warehouse_recovered:
        _warehouse_recovered = True
        _recover_warehouse(spark)
    return spark


def _recover_warehouse(spark) -> None:
    """Clear what a killed run left in this data dir's warehouse (only the local one: a shared
    warehouse elsewhere may have writers this lock does not cover)."""
    from pinlanding.recovery import sweep_warehouse

    local = settings.data_dir() / "warehouse"
    configured = spark.conf.get("spark.sql.warehouse.dir", "").removeprefix("file:")
    if configured and Path(configured).resolve() == local.resolve():
        sweep_warehouse(spark, local)


def describe_error(exc: BaseException) -> str:
    """The exception's type, error class and message (PySpark's repr() is empty)."""
    from dbt.adapters.spark_session.python_submissions import describe_error as describe

    return describe(exc)


def cmd_ingest(args) -> int:
    from pinlanding.ingest import ingest

    catalog = Path(args.catalog_dir).resolve() if args.catalog_dir else settings.catalog_dir()
    result = ingest(_spark(args), catalog, settings.raw_schema(), force=args.force)
    if result.skipped_unchanged:
        print(f"ingest: feed unchanged since batch {result.batch_id} ({result.rows_landed} rows); nothing to do")
    else:
        print(f"ingest: landed {result.rows_landed} rows ({result.load_errors} unreadable, "
              f"{result.blank_lines} blank lines skipped) from {result.feed_path} "
              f"in {result.seconds:.1f}s as batch {result.batch_id}")
    return 0


def dbt_invoke(dbt_args: list[str], target: str | None = None, dbt_vars: str | None = None) -> bool:
    """Run a dbt command in this process (sharing its SparkSession); True on success."""
    from dbt.cli.main import dbtRunner

    project = str(settings.PROJECT_DIR)
    argv = [*dbt_args, "--project-dir", project, "--profiles-dir", project]
    if target:
        argv += ["--target", target]
    if dbt_vars:
        argv += ["--vars", dbt_vars]
    result = dbtRunner().invoke(argv)
    if not result.success:
        for line in _dbt_failures(result):
            print(line, file=sys.stderr)
    return result.success


def _dbt_failures(result) -> list[str]:
    """One line per node that errored or failed (models, tests, seeds), with dbt's message."""
    if result.exception is not None:
        return [f"dbt: {describe_error(result.exception)}"]
    lines = []
    for node in getattr(result.result, "results", None) or []:
        status = str(getattr(node, "status", "")).lower()
        if status in ("error", "fail", "runtimeerr"):
            message = (node.message or "").strip().splitlines()
            lines.append(f"dbt {status}: {node.node.resource_type} {node.node.name}"
                         + (f": {message[0]}" if message else ""))
    return lines


def cmd_dbt(args) -> int:
    _spark(args)  # create the session with the profile's static settings first
    return 0 if dbt_invoke(args.dbt_args or ["build"], args.target) else 1


def load_summary(spark) -> dict:
    rows = spark.table(f"{settings.target_schema()}.catalog_load_summary").collect()
    if not rows:
        raise RuntimeError("catalog_load_summary is empty: run ingest and dbt build first")
    summary = rows[0].asDict()
    summary["loaded_at"] = str(summary["loaded_at"])
    feed = spark.sql(f"select feed_path from {settings.raw_schema()}.raw_feed_loads "
                     f"where batch_id = '{summary['batch_id']}'").collect()
    summary["feed_path"] = feed[0].feed_path if feed else None
    return summary


def cmd_check(args) -> tuple[int, list[str]]:
    from pinlanding.quality import Thresholds, run_checkpoint, summarize

    thresholds = Thresholds(min_image_valid_rate=args.min_image_valid_rate,
                            max_quarantine_rate=args.max_quarantine_rate)
    gx_dir = settings.data_dir()
    result = run_checkpoint(_spark(args), settings.target_schema(), gx_dir, thresholds)
    lines = summarize(result)
    print("\n".join(lines))
    print(f"checkpoint staged_catalog: {'PASSED' if result.success else 'FAILED'}"
          f" (data docs: {gx_dir / 'gx' / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'})")
    return (0 if result.success else 1), lines


SCORING = "product_attribute_scores+"  # dbt selector: the models that need a champion model
# dbt unit tests check SQL logic on fixed inputs, not the data: they run in `make test`
# (tests/integration/test_pipeline.py), not in every production build (~60 s of a 43k run).
NO_UNIT_TESTS = ["--exclude-resource-type", "unit_test"]


def has_champion() -> bool:
    """Whether the registry holds a champion; a registry that cannot be read raises (training a
    new model over an unreadable registry would hide the fault)."""
    from ml.registry import champion_version
    from pinlanding.tracking import configure

    configure()
    return champion_version() is not None


def with_store_token_limit(dbt_vars: str | None, train_config: str) -> tuple[str, int, str]:
    """dbt vars with `text_max_tokens` set to the MiniLM token limit scoring will ask the
    text-feature store for, and where it came from. The store is keyed by the limit, so a store
    built at another one is never read (scoring then embeds every text itself: correct, several
    times slower). Order: the user's --vars (a warning when it differs from the champion's); else
    the champion's (its training run's param); else the training config's, since with no champion
    this run trains that model first. A registry that cannot be read raises, as in has_champion."""
    import yaml

    try:
        given = yaml.safe_load(dbt_vars or "") or {}
    except yaml.YAMLError as exc:
        raise SystemExit(f"--vars is not valid YAML: {exc}") from None
    if not isinstance(given, dict):
        raise SystemExit(f"--vars must be a YAML mapping, got {dbt_vars!r}")
    from ml.registry import champion_text_max_tokens
    from ml.train import TrainConfig
    from pinlanding.tracking import configure

    configure()
    champion = champion_text_max_tokens()
    if "text_max_tokens" in given:
        limit = given["text_max_tokens"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise SystemExit(f"--vars text_max_tokens must be a positive integer, got {limit!r}")
        if champion is not None and champion != limit:
            print(f"warning: --vars text_max_tokens {limit} differs from the champion's {champion}: scoring will "
                  "not find the store's features and embeds every product text itself", file=sys.stderr)
        return dbt_vars, limit, "from --vars"
    limit, source = champion, "the champion model's"
    if limit is None:
        limit, source = TrainConfig.from_yaml(train_config).text_max_tokens, f"from {Path(train_config).name}"
    # YAML out, as dbt reads --vars: values YAML parsed (dates, say) need not be JSON-serialisable
    return yaml.safe_dump({**given, "text_max_tokens": limit}, default_flow_style=True).strip(), limit, source


def cmd_train(args) -> int:
    from ml.registry import REGISTERED_MODEL
    from ml.train import EXPERIMENT, TrainConfig, train
    from pinlanding.tracking import get_or_create_experiment

    cfg = TrainConfig.from_yaml(args.train_config, epochs=getattr(args, "epochs", None),
                                max_products=getattr(args, "max_products", None), seed=getattr(args, "seed", None))
    result = train(cfg, _spark(args), settings.target_schema(), settings.data_dir() / "training",
                   experiment_id=get_or_create_experiment(EXPERIMENT), resume=getattr(args, "resume", None),
                   register=not getattr(args, "no_register", False),
                   # `pinlanding train` alone frees the embedded metastore while it trains; `run` scores next
                   release_warehouse=args.func is cmd_train)
    print(f"trained run {result['run_id']} in {result['seconds']:.0f}s; "
          f"registered {REGISTERED_MODEL} version {result['version']}")
    return 0


def cmd_run(args) -> int:
    started = time.perf_counter()
    try:
        args.vars, limit, source = with_store_token_limit(args.vars, args.train_config)
    except Exception as exc:  # the registry could not be read: say where the run stopped
        print(f"pipeline failed at: text-feature store token limit ({describe_error(exc)})", file=sys.stderr)
        return 1
    print(f"text-feature store at {limit} tokens ({source})")

    def train_if_needed() -> int:
        if has_champion():
            print("champion model found in the registry; not training")
            return 0
        print(f"no champion model in the registry: training one ({args.train_config})")
        return cmd_train(args)

    steps = [("ingest", lambda: cmd_ingest(args)),
             # the feed's age (models/staging/_catalog__sources.yml): warns after 7 days, stops after 30
             ("feed freshness", lambda: 0 if dbt_invoke(["source", "freshness", "--select", "source:catalog.raw_products"],
                                                        args.target, args.vars) else 1),
             ("dbt build (catalog, attributes)",
              lambda: 0 if dbt_invoke(["build", "--exclude", SCORING, *NO_UNIT_TESTS], args.target, args.vars) else 1),
             ("dual encoder", train_if_needed),
             ("dbt build (matching)",
              lambda: 0 if dbt_invoke(["build", "--select", SCORING, *NO_UNIT_TESTS], args.target, args.vars) else 1)]
    for name, step in steps:
        print(f"== {name}")
        if step() != 0:
            print(f"pipeline failed at: {name}", file=sys.stderr)
            return 1
    print("== quality checks (Great Expectations)")
    code, lines = cmd_check(args)
    spark = _spark(args)
    summary = load_summary(spark)
    summary["checkpoint_passed"] = int(code == 0)
    steps = [r.asDict() for r in spark.table(f"{settings.target_schema()}.attribute_curation_steps")
             .orderBy("attribute_type").collect()]
    summary["vocabulary_active"] = sum(r["after_safety_review"] for r in steps)
    from pinlanding.tracking import log_platform_run, tracking_uri

    metrics = {f"{r.metric}.{r.dimension}": r.value for r in
               spark.table(f"{settings.target_schema()}.collection_metrics").collect()}
    summary.update({"collections_published": metrics.get("collections.published", 0),
                    "collections_held_back": metrics.get("collections.held_back", 0),
                    "precision_at_10": metrics.get("precision_at_10.pipeline"),
                    "precision_at_10_bm25": metrics.get("precision_at_10.bm25_baseline")})
    from pinlanding.publish import default_site_dir, publish_site

    if code == 0:
        print("== publish (static site)")
        site = publish_site()
        summary.update({f"site_{k}": v for k, v in site.items() if isinstance(v, (int, float))})
        print(json.dumps(site, indent=2, default=str))
    else:
        # The quality gate: a batch that failed its checks never reaches the site.
        print("== publish skipped: the quality gate failed")
        summary["site_published"] = 0
    run_id = log_platform_run(summary, lines, {"attribute_curation_steps.json": steps})
    print("== summary")
    print(json.dumps(summary, indent=2, default=str))
    print(f"MLflow run {run_id} logged to {tracking_uri()} (see it with `make mlflow-ui`)")
    if code != 0:
        failed = [line for line in lines if line.startswith("FAIL")]
        print(f"quality gate failed: Great Expectations checkpoint staged_catalog, {len(failed)} "
              f"expectation(s) failed:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        print(f"the site was NOT published; the last good site stays in place at {default_site_dir()}",
              file=sys.stderr)
    print(f"pipeline {'finished' if code == 0 else 'FAILED checks'} in {time.perf_counter() - started:.0f}s")
    return code


def cmd_predict(args) -> int:
    """JSONL out, one {"product_id", "attributes": [{attribute_id, type, value, score}]} per product.
    Photos pass the same checks as in staging; a rejected photo is scored text-only (or skipped
    with --image-only, which scores only products with a valid photo)."""
    import pandas as pd
    from tqdm import tqdm

    from ml.pyfunc import load_local, resolve_champion
    from ml.registry import REGISTERED_MODEL
    from pinlanding.images import check_image
    from pinlanding.ingest import read_feed
    from pinlanding.tracking import configure

    configure()
    version, model_dir = resolve_champion()
    model = load_local(model_dir)
    catalog_root = Path(args.images).resolve().parent if args.images else None
    records = []
    for row in read_feed(Path(args.feed)):
        if row.get("_blank") or row.get("_load_error") or not row.get("product_id"):
            continue
        image_path = None
        if catalog_root and row.get("image"):
            check = check_image(catalog_root, row["image"])
            image_path = check.resolved_path if check.status == "valid" else None
        if args.image_only and image_path is None:
            continue
        records.append({"product_id": row["product_id"], "title": row.get("title") or "",
                        "description": row.get("description"), "image_path": image_path or ""})
    frame = pd.DataFrame(records, columns=["product_id", "title", "description", "image_path"])
    written = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for start in tqdm(range(0, len(frame), 512), desc="predict", unit="batch"):
            chunk = frame.iloc[start:start + 512].reset_index(drop=True)
            result = model.predict(None, chunk, params={"top_k": args.top_k, "image_only": args.image_only})
            for product_id, attributes in zip(result["product_id"], result["attributes"]):
                out.write(json.dumps({"product_id": product_id, "attributes": json.loads(attributes)}) + "\n")
                written += 1
    print(f"predict: {written} products scored with {REGISTERED_MODEL} v{version} -> {args.out}")
    return 0


def cmd_vocabulary(args) -> int:
    from ml.pyfunc import load_local, resolve_champion
    from ml.registry import REGISTERED_MODEL
    from pinlanding.tracking import configure

    configure()
    version, model_dir = resolve_champion()
    with open(args.out, "w", encoding="utf-8") as out:
        for a in load_local(model_dir).vocabulary:
            out.write(json.dumps({"attribute_id": a["attribute_id"], "type": a["type"], "value": a["value"],
                                  "aliases": a.get("aliases", [])}) + "\n")
    print(f"vocabulary of {REGISTERED_MODEL} v{version} -> {args.out}")
    return 0


def cmd_publish(args) -> int:
    """Render the collection marts (read from Parquet, no Spark) into the static site."""
    from pinlanding.publish import publish_site

    stats = publish_site(out_dir=args.out, base_url=args.base_url, page_size=args.page_size, full=args.full)
    print(json.dumps(stats, indent=2))
    return 0


def cmd_preview(args) -> int:
    from pinlanding.preview import serve
    from pinlanding.publish import default_site_dir

    serve(args.dir or default_site_dir(), args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinlanding", description=__doc__)
    parser.add_argument("--target", default=None, help="profiles.yml target (default: $PINLANDING_TARGET or local)")
    parser.add_argument("--wait-lock", type=float, default=None, metavar="SECONDS",
                        help="when another pinlanding process is writing the data dir, wait up to this long for it "
                             "(default: $PINLANDING_LOCK_WAIT or 0: fail at once)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_check_flags(p):
        p.add_argument("--min-image-valid-rate", type=float, default=0.99)
        p.add_argument("--max-quarantine-rate", type=float, default=0.05)

    p = sub.add_parser("ingest", help="land the catalog feed in the raw tables")
    p.add_argument("--catalog-dir", help="catalog directory (default: $PINLANDING_CATALOG_DIR or ../shared/data/fashion-catalog)")
    p.add_argument("--force", action="store_true", help="reload even if the feed is unchanged")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("dbt", help="run a dbt command in-process, e.g. `pinlanding dbt build -s stg_products`")
    p.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_dbt)

    p = sub.add_parser("check", help="run the Great Expectations checkpoint over the staged catalog")
    add_check_flags(p)
    p.set_defaults(func=lambda a: cmd_check(a)[0])

    default_train_config = str(settings.PROJECT_DIR / "ml" / "configs" / "default.yaml")
    p = sub.add_parser("train", help="train the dual encoder on the warehouse and register it in MLflow")
    p.add_argument("--train-config", default=default_train_config)
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-products", type=int, help="train on a deterministic subset of this many products")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", type=Path, help="checkpoint to resume from (data/training/checkpoints/<run>/epoch_NNN.pt)")
    p.add_argument("--no-register", action="store_true", help="train and evaluate only")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="score a feed outside dbt with the champion model")
    p.add_argument("--feed", required=True, help="products.jsonl(.gz)")
    p.add_argument("--images", help="directory the feed's image paths resolve in (its parent is the catalog root)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--out", required=True)
    p.add_argument("--image-only", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("vocabulary", help="write the champion model's vocabulary as JSONL")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_vocabulary)

    p = sub.add_parser("run", help="the whole pipeline: ingest -> dbt build -> train if needed -> scoring -> checks")
    p.add_argument("--catalog-dir", help="catalog directory")
    p.add_argument("--train-config", default=default_train_config, help="used when the registry has no champion")
    p.add_argument("--vars", help="dbt vars for the build, YAML, e.g. '{llm_sample_size: 20}'")
    p.add_argument("--force", action="store_true", help="reload the feed even if unchanged")
    add_check_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("publish", help="render the collection marts into the static site (incremental)")
    p.add_argument("--out", help="site directory (default: $PINLANDING_SITE_DIR or $PINLANDING_DATA_DIR/site)")
    p.add_argument("--base-url", help="absolute site URL (default: $PINLANDING_SITE_BASE_URL or http://127.0.0.1:8000)")
    p.add_argument("--page-size", type=int, help="products per page (default: $PINLANDING_SITE_PAGE_SIZE or 48)")
    p.add_argument("--full", action="store_true", help="rewrite every page, changed or not")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("preview", help="serve the published site on http://127.0.0.1:PORT/")
    p.add_argument("--dir", help="site directory (default: as for publish)")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_preview)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os
    import traceback

    from pinlanding.locking import BUSY_EXIT_CODE, RunLockBusy, run_lock, stop_stale_llm_servers

    args = build_parser().parse_args(argv)
    data_dir = settings.pin_environment()
    global _lock_held
    try:
        if args.command not in WRITERS:
            return args.func(args)
        wait = args.wait_lock if args.wait_lock is not None else float(os.environ.get("PINLANDING_LOCK_WAIT", "0"))
        with run_lock(data_dir, f"pinlanding {args.command}", wait):
            _lock_held = True
            try:
                stop_stale_llm_servers(data_dir)
                return args.func(args)
            finally:
                _lock_held = False
    except RunLockBusy as busy:
        print(f"pinlanding {args.command}: {busy}", file=sys.stderr)
        return BUSY_EXIT_CODE
    except Exception as exc:  # noqa: BLE001 - say what failed, with Spark's error class and message
        traceback.print_exc()
        print(f"pinlanding {args.command} failed: {describe_error(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
