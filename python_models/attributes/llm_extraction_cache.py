"""LLM responses per (product content hash, backend, model, prompt version): the extraction cache.

Incremental and append-only: a run calls the LLM only for sampled products with no `ok` response
under the current key, so a rerun with nothing new makes zero calls and a rerun after failures
calls exactly the gaps. Only a validated, non-empty answer is `ok`; a failed call, an empty answer
or one that breaks the schema is an `error` row (API keys redacted) and never a cache hit.
`full_refresh` is off so `dbt build --full-refresh` does not throw paid-for answers away (drop the
table to reset).

Calls go through ml/llm_client.py: the client's retries, a deadline per request and the run's
circuit breaker (vars llm_breaker_threshold, llm_timeout_s, llm_max_retries). Once the breaker is
open every remaining product gets an error row without a call, and the model says so at the end.

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
    from ml.llm_client import EmptyAnswerError, LLMEndpoint, LLMSettings
    from ml.llm_server import MODEL_ALIAS, LlamaServer, LlamaServerError
    from pinlanding.settings import data_dir

    settings = LLMSettings.from_env(timeout=dbt.config.get("llm_timeout_s"),
                                    max_retries=dbt.config.get("llm_max_retries"),
                                    breaker_threshold=dbt.config.get("llm_breaker_threshold"))

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
    server = LlamaServer(data_dir()) if backend == "local" else None
    started_run = time.perf_counter()
    try:
        if server is not None:
            try:
                server.start()
            except LlamaServerError as exc:  # recorded below as every product's error, like a dead endpoint
                print(f"LLM extraction ({backend}): {exc}")
            endpoint = LLMEndpoint(server.base_url, api_key="local", settings=settings, server=server)
            extractor = LocalLLMExtractor(server.base_url, model_name, endpoint=endpoint)
        else:
            endpoint = LLMEndpoint(None, settings=settings)  # OPENAI_BASE_URL / OPENAI_API_KEY
            extractor = OpenAIExtractor(model_name, endpoint=endpoint)
        for row in tqdm(todo, desc=f"LLM extraction ({backend})", unit="product"):
            product = Product(row.product_id, row.title, row.description, row.image_path)
            started = time.perf_counter()
            try:
                items = extractor.extract(product)
                if not items:  # an empty answer is not an answer: never cached, asked again next run
                    raise EmptyAnswerError("no attributes in the answer")
                status, payload, error = "ok", json.dumps([i.model_dump() for i in items]), None
            except Exception as exc:  # recorded, retried on the next run (only 'ok' rows are cached)
                status, payload, error = "error", None, redact(f"{type(exc).__name__}: {exc}")[:1000]
            rows.append((row.product_id, row.content_hash, backend, model_name, prompt_version, status,
                         payload, error, time.perf_counter() - started,
                         datetime.now(timezone.utc).replace(tzinfo=None)))
    finally:
        if server is not None:
            server.stop()
    errors = sum(r[5] == "error" for r in rows)
    print(f"LLM extraction ({backend}): {len(rows)} products, {len(rows) - errors} ok, {errors} errors "
          f"in {time.perf_counter() - started_run:.1f}s; {endpoint.summary()}")
    if endpoint.refused:
        print(f"LLM extraction ({backend}): circuit breaker OPEN: {endpoint.refused} products not sent, "
              "recorded as errors; the next run asks for exactly these gaps")
    return session.createDataFrame(rows, SCHEMA)
