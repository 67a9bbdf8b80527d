"""MiniLM sentence features of every product text: the text-feature store.

MiniLM is frozen (benchmarks/bench_text_tower.py measured why), so a text's features depend on the
text, the packaged encoder and the token limit, never on the champion. Keyed by (text_hash,
encoder) and append-only: a run embeds only texts the store has never seen, so a rerun, an
incremental day or a new champion does not pay MiniLM again (in a fresh data dir MiniLM was ~80%
of product_attribute_scores: docs/benchmarks.md, 250k run). Training (ml/train.py load_catalog)
and scoring read their product features from here.

Embedding runs in the Spark Python workers with mapInPandas, one torch thread per worker (Spark
already runs one task per core), so it spreads over executors on a cluster. Var
`text_encoder_precision`: `auto` runs MiniLM under bfloat16 autocast on workers whose CPU has
native bfloat16 (~3x faster, cosine 0.99998 to float32: benchmarks/bench_text_encoder.py) and in
float32 elsewhere; `float32` / `bfloat16` force one. Each row records what it was computed with.
"""

import numpy as np
import pandas as pd

SCHEMA = "text_hash string, encoder string, precision string, features array<float>, embedded_at timestamp"


def embed_partition(batches, encoder, max_tokens, precision, batch_size=256):
    from datetime import datetime, timezone

    import torch

    from ml.data import text_features
    from ml.embeddings import use_bfloat16

    torch.set_num_threads(1)  # one task per core already (measured: 2.3x slower with 2 threads per worker)
    # decided on the worker: on a cluster the executors' CPUs are the ones that count
    bfloat16 = use_bfloat16(precision)
    used = "bfloat16" if bfloat16 else "float32"
    embedded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    for frame in batches:
        for start in range(0, len(frame), batch_size):
            chunk = frame.iloc[start:start + batch_size]
            vectors = text_features(chunk["text"].tolist(), None, max_tokens, persist=False, bfloat16=bfloat16)
            yield pd.DataFrame({"text_hash": chunk["text_hash"].to_numpy(), "encoder": encoder, "precision": used,
                                "features": list(vectors.astype(np.float32)), "embedded_at": embedded_at})


def model(dbt, session):
    # `dbt build --full-refresh` keeps the store (a 1M catalog is ~1 h of MiniLM); drop the table to reset
    dbt.config(materialized="incremental", incremental_strategy="append", full_refresh=False)
    max_tokens = int(dbt.config.get("text_max_tokens"))
    from ml.embeddings import check_precision

    precision = check_precision("text_encoder_precision", dbt.config.get("text_encoder_precision"))

    from pyspark.sql import functions as F

    from ml.data import product_text_columns, text_encoder

    encoder = text_encoder(max_tokens)
    # the text exactly as training and scoring build it (ml/data.py product_text), hashed in the JVM
    text, text_hash = product_text_columns()
    texts = dbt.ref("int_products").select(text_hash.alias("text_hash"), text.alias("text")).dropDuplicates(["text_hash"])
    if dbt.is_incremental:
        stored = session.table(str(dbt.this)).where(F.col("encoder") == encoder).select("text_hash")
        texts = texts.join(stored, "text_hash", "left_anti")
    # SparkContext.defaultParallelism does not exist behind Spark Connect: use the shuffle width.
    partitions = max(int(session.conf.get("spark.sql.shuffle.partitions")), 1)
    return texts.repartition(partitions).mapInPandas(
        lambda batches: embed_partition(batches, encoder, max_tokens, precision), schema=SCHEMA)
