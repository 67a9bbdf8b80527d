"""LLM-written collection titles: every attempt, and the title cache.

One row per LLM attempt, keyed by (collection_id, attribute_key, prompt_version, model). Incremental
and append-only: a run writes titles only for candidates with no final outcome under the current
key, so a rerun with nothing new makes zero LLM calls and a rerun after failures calls exactly the
gaps. A key's outcome is final only when a title was accepted or the last attempt was a real answer
that was rejected. Failed calls (after the client's retries), empty answers and bodies that are not
completions are `error` attempts, never final: `int_collection_titles` holds the collection back as
`title_error` and the next run asks again. `full_refresh` is off so `dbt build --full-refresh`
keeps titles already paid for.

Calls go through ml/llm_client.py: one retry policy (the client's), a deadline per request, and the
run's circuit breaker shared with llm_extraction_cache (vars llm_breaker_threshold, llm_timeout_s,
llm_max_retries). Once it is open every remaining collection gets an error attempt without a call,
and the model says so at the end.

Backends (var llm_backend): `local` starts the embedded llama.cpp server (Gemma-3-270M, few-shot
completion from the exemplars seed); `openai` uses OPENAI_BASE_URL / OPENAI_API_KEY from the
environment in chat mode (the model also judges quality 1-5); `none` writes nothing, and candidates
stay held back as `title_pending`.
"""

import time
from datetime import datetime, timezone

SCHEMA = (
    "collection_id string, attribute_key string, prompt_version string, model string, backend string,"
    " attempt int, raw_output string, title string, status string, reasons string, quality_score int,"
    " judge string, final boolean, latency_s double, created_at timestamp"
)
KEY = ["collection_id", "attribute_key", "prompt_version", "model"]


def model(dbt, session):
    dbt.config(materialized="incremental", incremental_strategy="append", full_refresh=False)
    backend = dbt.config.get("llm_backend")
    openai_model = dbt.config.get("openai_model")
    max_attempts = int(dbt.config.get("title_max_attempts"))
    min_quality = int(dbt.config.get("min_title_quality"))
    min_chars = int(dbt.config.get("title_min_chars"))
    max_chars = int(dbt.config.get("title_max_chars"))
    constrained = str(dbt.config.get("title_grammar")).strip().lower() in ("true", "1", "yes")
    from pyspark.sql import functions as F

    from ml.extractors import redact
    from ml.llm_client import LLMEndpoint, LLMSettings
    from ml.llm_server import MODEL_ALIAS, LlamaServer, LlamaServerError
    from pinlanding.settings import data_dir
    from ml.titles import Attribute, TitleWriter, prompt_version

    settings = LLMSettings.from_env(timeout=dbt.config.get("llm_timeout_s"),
                                    max_retries=dbt.config.get("llm_max_retries"),
                                    breaker_threshold=dbt.config.get("llm_breaker_threshold"))

    if backend == "none":
        return session.createDataFrame([], SCHEMA)
    if backend not in ("local", "openai"):
        raise ValueError(f"llm_backend must be local, openai or none; got {backend!r}")
    exemplars = [(r.attributes, r.title) for r in dbt.ref("collection_title_exemplars").orderBy("attributes").collect()]
    model_name = MODEL_ALIAS if backend == "local" else openai_model
    # the grammar rides on llama.cpp's completion requests (local); chat backends go unconstrained
    mode = "completion" if backend == "local" else "chat"
    version = prompt_version(exemplars, mode, constrained and mode == "completion")

    aliases = dbt.ref("attribute_vocabulary").select("attribute_id", "aliases")
    wanted = (dbt.ref("int_collection_candidates").where("contradiction_reason is null")
              .select("collection_id", "attribute_key", F.explode("attributes").alias("a"))
              .join(aliases, F.col("a.attribute_id") == aliases.attribute_id, "left")
              .groupBy("collection_id", "attribute_key")
              .agg(F.collect_list(F.struct("a.attribute_type", "a.value", "aliases")).alias("attributes"))
              .withColumn("prompt_version", F.lit(version)).withColumn("model", F.lit(model_name)))
    if dbt.is_incremental:
        done = session.table(str(dbt.this)).where("final").select(*KEY)
        wanted = wanted.join(done, KEY, "left_anti")
    todo = wanted.orderBy("collection_id").collect()
    if not todo:
        return session.createDataFrame([], SCHEMA)

    from tqdm import tqdm

    rows = []
    now = lambda: datetime.now(timezone.utc).replace(tzinfo=None)  # noqa: E731
    server = LlamaServer(data_dir()) if backend == "local" else None
    try:
        if server is not None:
            try:
                server.start()
            except LlamaServerError as exc:  # every collection gets the error, as with a dead endpoint
                print(f"collection titles: {exc}")
            endpoint = LLMEndpoint(server.base_url, api_key="local", settings=settings, server=server)
            writer = TitleWriter(server.base_url, model_name, exemplars, mode="completion", endpoint=endpoint,
                                 constrained=constrained)
        else:
            endpoint = LLMEndpoint(None, settings=settings)  # OPENAI_BASE_URL / OPENAI_API_KEY
            writer = TitleWriter(None, model_name, exemplars, mode="chat", endpoint=endpoint)
        assert writer.prompt_version == version, (writer.prompt_version, version)
        started = time.perf_counter()
        errors = 0
        for row in tqdm(todo, desc=f"collection titles ({backend})", unit="collection"):
            attributes = [Attribute(a.attribute_type, a.value, tuple(a.aliases or ())) for a in row.attributes]
            try:
                result = writer.write(attributes, max_attempts, min_quality, min_chars, max_chars)
            except Exception as exc:  # logged; not final, so the next run retries it
                errors += 1
                rows.append((row.collection_id, row.attribute_key, version, model_name, backend, 0, None, None,
                             "error", redact(f"{type(exc).__name__}: {exc}")[:1000], None, None, False, None, now()))
                continue
            errors += result.error is not None
            for attempt in result.attempts:
                last = attempt["attempt"] == len(result.attempts)
                if attempt["error"]:
                    status, reasons, final = "error", attempt["error"], False
                else:
                    status = "accepted" if last and result.accepted else "rejected"
                    reasons, final = "; ".join(attempt["reasons"]) or None, last and result.error is None
                rows.append((row.collection_id, row.attribute_key, version, model_name, backend, attempt["attempt"],
                             redact(attempt["raw"]) if attempt["raw"] else attempt["raw"], attempt["title"], status,
                             redact(reasons)[:1000] if reasons else None, attempt["quality_score"], attempt["judge"],
                             final, attempt["latency_s"], now()))
        seconds = time.perf_counter() - started
        print(f"collection titles: {len(todo)} collections, {errors} held back as title_error, "
              f"{writer.calls} LLM calls in {seconds:.1f}s ({len(todo) / max(seconds, 1e-9):.2f} titles/s); "
              f"{endpoint.summary()}")
        if endpoint.refused:
            print(f"collection titles: circuit breaker OPEN: {endpoint.refused} calls not sent; those collections "
                  "are title_error attempts and the next run asks for exactly these gaps")
    finally:
        if server is not None:
            server.stop()
    return session.createDataFrame(rows, SCHEMA)
