"""LLM responses per (product content hash, backend, model, prompt version): the extraction cache.

Incremental and append-only: a run calls the LLM only for sampled products with no successful
response under the current key, so a rerun with nothing new makes zero calls. `full_refresh` is
off so `dbt build --full-refresh` does not throw paid-for answers away (drop the table to reset).

Backends (var `llm_backend` / env PINLANDING_LLM_BACKEND): `local` starts the embedded llama.cpp
server for the duration of this model; `openai` uses OPENAI_BASE_URL / OPENAI_API_KEY from the
environment (never from dbt config, which is written to target/manifest.json); `none` skips.
"""

import json
import time
from datetime import datetime, timezone

SCHEMA = (
    "product_id string, content_hash string, backend string, model string, prompt_version string,"
    " status string, attributes_json string, error string, latency_s double, created_at timestamp"
)
KEY = ["product_id", "content_hash", "backend", "model", "prompt_version"]


def sample_products(products, sample_size):
    """A deterministic sample: the products with the smallest sha2(product_id)."""
    from pyspark.sql import functions as F

    ordered = products.orderBy(F.sha2("product_id", 256))
    return ordered if sample_size < 0 else ordered.limit(sample_size)


def model(dbt, session):
    dbt.config(materialized="incremental", incremental_strategy="append", full_refresh=False)
    backend = dbt.config.get("llm_backend")
    sample_size = int(dbt.config.get("llm_sample_size"))
    openai_model = dbt.config.get("openai_model")
    from pyspark.sql import functions as F

    from ml.extractors import LocalLLMExtractor, OpenAIExtractor, Product, redact
    from ml.llm_server import MODEL_ALIAS, LlamaServer

    if backend == "none" or sample_size == 0:
        return session.createDataFrame([], SCHEMA)
    if backend not in ("local", "openai"):
        raise ValueError(f"llm_backend must be local, openai or none; got {backend!r}")
    model_name = MODEL_ALIAS if backend == "local" else openai_model
    prompt_version = (LocalLLMExtractor if backend == "local" else OpenAIExtractor).prompt_version

    wanted = (sample_products(dbt.ref("int_products"), sample_size)
              .select("product_id", "content_hash", "title", "description", "image_path")
              .withColumn("backend", F.lit(backend)).withColumn("model", F.lit(model_name))
              .withColumn("prompt_version", F.lit(prompt_version)))
    if dbt.is_incremental:
        done = session.table(str(dbt.this)).where("status = 'ok'").select(*KEY)
        wanted = wanted.join(done, KEY, "left_anti")
    todo = wanted.collect()
    if not todo:
        return session.createDataFrame([], SCHEMA)

    from tqdm import tqdm

    rows = []
    server = LlamaServer() if backend == "local" else None
    try:
        if server is not None:
            server.start()
            extractor = LocalLLMExtractor(server.base_url, model_name, server=server)
        else:
            extractor = OpenAIExtractor(model_name)
        for row in tqdm(todo, desc=f"LLM extraction ({backend})", unit="product"):
            product = Product(row.product_id, row.title, row.description, row.image_path)
            started = time.perf_counter()
            try:
                items = extractor.extract(product)
                status, payload, error = "ok", json.dumps([i.model_dump() for i in items]), None
            except Exception as exc:  # recorded, retried on the next run (only 'ok' rows are cached)
                status, payload, error = "error", None, redact(f"{type(exc).__name__}: {exc}")[:1000]
            rows.append((row.product_id, row.content_hash, backend, model_name, prompt_version, status,
                         payload, error, time.perf_counter() - started,
                         datetime.now(timezone.utc).replace(tzinfo=None)))
    finally:
        if server is not None:
            server.stop()
    return session.createDataFrame(rows, SCHEMA)
