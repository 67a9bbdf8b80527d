"""LLM-written collection titles: every attempt, and the title cache.

One row per LLM attempt, keyed by (collection_id, attribute_key, prompt_version, model). Incremental
and append-only: a run writes titles only for candidates with no final outcome under the current
key, so a rerun with nothing new makes zero LLM calls. A key's outcome is final when a title was
accepted or the last attempt was rejected; transport errors (server unreachable after retries with
backoff) are logged as `error` and retried on the next run. `full_refresh` is off so
`dbt build --full-refresh` keeps titles already paid for.

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
    from pyspark.sql import functions as F

    from ml.extractors import redact
    from ml.llm_server import MODEL_ALIAS, LlamaServer
    from ml.titles import Attribute, TitleWriter, prompt_version

    if backend == "none":
        return session.createDataFrame([], SCHEMA)
    if backend not in ("local", "openai"):
        raise ValueError(f"llm_backend must be local, openai or none; got {backend!r}")
    exemplars = [(r.attributes, r.title) for r in dbt.ref("collection_title_exemplars").orderBy("attributes").collect()]
    model_name = MODEL_ALIAS if backend == "local" else openai_model
    version = prompt_version(exemplars) + ("" if backend == "local" else "-chat")

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
    server = LlamaServer() if backend == "local" else None
    try:
        if server is not None:
            server.start()
            writer = TitleWriter(server.base_url, model_name, exemplars, mode="completion", server=server,
                                 api_key="local")
        else:
            writer = TitleWriter(None, model_name, exemplars, mode="chat")  # OPENAI_BASE_URL / OPENAI_API_KEY
        started = time.perf_counter()
        for row in tqdm(todo, desc=f"collection titles ({backend})", unit="collection"):
            attributes = [Attribute(a.attribute_type, a.value, tuple(a.aliases or ())) for a in row.attributes]
            try:
                result = writer.write(attributes, max_attempts, min_quality, min_chars, max_chars)
            except Exception as exc:  # logged; not final, so the next run retries it
                rows.append((row.collection_id, row.attribute_key, version, model_name, backend, 0, None, None,
                             "error", redact(f"{type(exc).__name__}: {exc}")[:1000], None, None, False, None, now()))
                continue
            for attempt in result.attempts:
                last = attempt["attempt"] == len(result.attempts)
                accepted = last and result.accepted
                rows.append((row.collection_id, row.attribute_key, version, model_name, backend, attempt["attempt"],
                             attempt["raw"], attempt["title"], "accepted" if accepted else "rejected",
                             "; ".join(attempt["reasons"]) or None, attempt["quality_score"], attempt["judge"],
                             last, attempt["latency_s"], now()))
        seconds = time.perf_counter() - started
        print(f"collection titles: {len(todo)} collections, {writer.calls} LLM calls in {seconds:.1f}s "
              f"({len(todo) / max(seconds, 1e-9):.2f} titles/s)")
    finally:
        if server is not None:
            server.stop()
    return session.createDataFrame(rows, SCHEMA)
