"""Score every product against the vocabulary with the champion dual encoder; keep the top K.

This table is also the attribute-score cache: incremental with insert_overwrite, it keeps the
rows of products whose content hash and model version are unchanged and scores only the rest
(all products when the champion changed). Scoring runs on Spark with mapInPandas: the model
directory and the attribute embeddings travel inside the task (bytes, not a driver path: on a
cluster or behind Spark Connect the executors do not see the driver's files); each Python worker
unpacks and loads the model once (ml/pyfunc.load_packed) and scores a partition at a time.
MiniLM features come from the text-feature store (product_text_features) by text hash; a worker
embeds a text itself only when the store has none under the champion's encoder and token limit.
Var `scoring_precision`: `auto` runs the towers under bfloat16 autocast on workers whose CPU has
native bfloat16 (the photo tower ~1.6x faster, top-10 attributes 99.9% the same as float32's:
benchmarks/bench_image_scoring.py), float32 elsewhere; `float32` / `bfloat16` force one.
"""

import numpy as np
import pandas as pd

SCHEMA = (
    "product_id string, content_hash string, model_version string, attribute_id string,"
    " attribute_type string, value string, score double, rank int, scored_at timestamp"
)
COLUMNS = [c.split()[0] for c in SCHEMA.split(", ")]
PRODUCT_COLUMNS = ["product_id string", "title string", "description string", "image_path string", "content_hash string"]


def top_k_rows(chunk, scores, top_k, version, vocab, scored_at):
    """Each product's `top_k` attributes by score, best first, as output rows: built with array
    indexing, not a Python tuple per row (row by row this was 38% of a profiled scoring task:
    docs/benchmarks.md)."""
    k = min(top_k, scores.shape[1])
    if k <= 0 or not len(chunk):
        return pd.DataFrame(columns=COLUMNS)
    # argpartition then sort only the k kept: the same order as a full argsort by descending score
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.argsort(-scores, axis=1)
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable"), 1)
    flat = top.ravel()
    n = len(chunk)
    return pd.DataFrame({
        "product_id": np.repeat(chunk["product_id"].to_numpy(), k),
        "content_hash": np.repeat(chunk["content_hash"].to_numpy(), k),
        "model_version": version,
        "attribute_id": vocab["ids"][flat],
        "attribute_type": vocab["types"][flat],
        "value": vocab["values"][flat],
        "score": np.take_along_axis(scores, top, 1).ravel().astype(np.float64),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
        "scored_at": pd.Timestamp(scored_at),
    }, columns=COLUMNS)


def with_stored_features(products, stored, partitions):
    """Products with their text_hash and the store's MiniLM features (null where it has none),
    in `partitions` partitions ready for the scoring tasks.

    Both sides are hash-partitioned on text_hash into the same count, so the join needs no other
    exchange and its output is already spread evenly (a repartition after the join shuffled every
    product's 384 features a second time; with the text hashed in the JVM too, the Spark passes at
    250k took 7.3-8.3 s before and 6.6-6.7 s after: docs/benchmarks.md). Adaptive execution never
    coalesces a repartition to a fixed count. tests/unit/test_matching.py checks the plan."""
    from ml.data import product_text_columns

    features = stored.repartition(partitions, "text_hash").dropDuplicates(["text_hash"])
    return (products.withColumn("text_hash", product_text_columns()[1]).repartition(partitions, "text_hash")
            .join(features, "text_hash", "left"))


def score_partition(batches, packed_model, version, vocab, top_k, precision="float32", batch_size=256):
    from datetime import datetime, timezone

    from ml.embeddings import use_bfloat16
    from ml.pyfunc import load_packed

    import torch

    # Spark runs one task per core: torch's own thread pool on top oversubscribes the cores
    # (measured: 400 MiniLM texts 12.1 s with 2 threads per worker vs 5.2 s with 1, on 2 cores).
    torch.set_num_threads(1)
    # decided on the worker: on a cluster the executors' CPUs are the ones that count
    bfloat16 = use_bfloat16(precision)
    scored_at = datetime.now(timezone.utc).replace(tzinfo=None)
    model = load_packed(packed_model)
    for frame in batches:
        for start in range(0, len(frame), batch_size):
            chunk = frame.iloc[start:start + batch_size].reset_index(drop=True)
            stored = {h: np.asarray(f, dtype=np.float32) for h, f in zip(chunk["text_hash"], chunk["features"])
                      if f is not None}
            # the served score (ml/pyfunc.py): evaluation's, up to bfloat16 rounding where it runs
            scores = model.scores(chunk, text_features=stored, bfloat16=bfloat16)
            yield top_k_rows(chunk, scores, top_k, version, vocab, scored_at)


def model(dbt, session):
    dbt.config(materialized="incremental", incremental_strategy="insert_overwrite")
    top_k = int(dbt.config.get("score_top_k"))
    from ml.embeddings import check_precision

    precision = check_precision("scoring_precision", dbt.config.get("scoring_precision"))
    from pyspark.sql import functions as F

    from ml.data import text_encoder
    from ml.pyfunc import load_local, pack_model_dir, resolve_champion
    from pinlanding.tracking import configure

    configure()
    version, model_dir = resolve_champion()
    champion = load_local(model_dir)
    vocab = {  # object arrays: top_k_rows indexes them with each chunk's top attributes
        "ids": np.array([a["attribute_id"] for a in champion.vocabulary], dtype=object),
        "types": np.array([a["type"] for a in champion.vocabulary], dtype=object),
        "values": np.array([a["value"] for a in champion.vocabulary], dtype=object),
    }
    packed_model = pack_model_dir(model_dir)
    products = dbt.ref("int_products").select(*[c.split()[0] for c in PRODUCT_COLUMNS])

    kept = None
    if dbt.is_incremental:
        previous = session.table(str(dbt.this))
        current = products.select("product_id", "content_hash").withColumn("model_version", F.lit(version))
        kept = previous.join(current, ["product_id", "content_hash", "model_version"], "left_semi")
        products = products.join(kept.select("product_id").distinct(), "product_id", "left_anti")

    encoder = text_encoder(champion.text_max_tokens)
    stored = dbt.ref("product_text_features").where(F.col("encoder") == encoder)
    if stored.isEmpty() and not products.isEmpty():
        # correct but several times slower: say why, and how to make the store match
        print(f"product_attribute_scores: the text-feature store holds nothing under {encoder}, the champion's "
              "encoder: every product text is embedded here. Build product_text_features with --vars "
              "'{text_max_tokens: " + str(champion.text_max_tokens) + "}' (`pinlanding run` sets it itself).")
        # (no doubled braces above: dbt refuses Jinja delimiters in a Python model's source)
    # SparkContext.defaultParallelism does not exist behind Spark Connect: use the shuffle width.
    partitions = max(int(session.conf.get("spark.sql.shuffle.partitions")), 1)
    products = with_stored_features(products, stored.select("text_hash", "features"), partitions)
    scored = products.mapInPandas(
        lambda batches: score_partition(batches, packed_model, version, vocab, top_k, precision), schema=SCHEMA)
    return scored if kept is None else kept.select(*COLUMNS).unionByName(scored)
