"""Failing LLM endpoints cost seconds, never hours; nothing half-written is cached; the key never leaks.

Unit level (no Spark): the attribute extractor and the title writer against every fault the
fault-injecting server plays (tests/unit/fault_server.py): bounded wall time, the right error,
the circuit breaker opening after N consecutive failures, and no request once it is open.

End to end (real Spark, dbt, MLflow, GX): `pinlanding run` on a slice of the real catalog with
the openai backend pointed at a server answering 500 to everything, then a healthy server that
dies mid-run, then a healthy one: bounded time, every sampled product and every collection
accounted for, only the gaps asked again, and the API key nowhere on disk or in the output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ml.extractors import OpenAIExtractor, Product
from ml.llm_client import LLMSettings, new_breaker
from ml.titles import Attribute, TitleWriter
from tests.unit.fault_server import FaultServer, chat_response, closed_port_url

SECRET = f"sk-test-SECRET-{uuid.uuid4().hex}"
GOOD = json.dumps({"attributes": [{"type": "colour", "value": "navy blue", "confidence": 0.9}]})
PRODUCTS = [Product(str(i), f"Navy Blue Tee {i}", "Cotton tee") for i in range(8)]
COLLECTION = [Attribute("article_type", "Tshirts", ("t-shirt",)), Attribute("colour", "Blue")]

THRESHOLD, TIMEOUT, RETRIES = 3, 0.5, 1
BACKOFF = 0.5  # the openai client's first retry waits at most 0.5 s
PER_CALL = (RETRIES + 1) * TIMEOUT + RETRIES * BACKOFF  # worst case of one failed call
SLACK = 3.0  # a loaded 2-core machine


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def _settings() -> LLMSettings:
    return LLMSettings(timeout=TIMEOUT, max_retries=RETRIES, breaker_threshold=THRESHOLD)


def _extractor(url: str) -> OpenAIExtractor:
    from ml.llm_client import LLMEndpoint

    endpoint = LLMEndpoint(url, settings=_settings(), breaker=new_breaker(url, THRESHOLD, 600))
    return OpenAIExtractor("test-model", endpoint=endpoint)


def _writer(url: str) -> TitleWriter:
    from ml.llm_client import LLMEndpoint

    endpoint = LLMEndpoint(url, settings=_settings(), breaker=new_breaker(url, THRESHOLD, 600))
    return TitleWriter(url, "test-model", [("article_type=Dresses", "Dresses")], mode="chat", endpoint=endpoint)


def _extract_all(extractor) -> list[str]:
    """The error type per product ('ok' for an answer), as the extraction model records it."""
    out = []
    for product in PRODUCTS:
        try:
            extractor.extract(product)
            out.append("ok")
        except Exception as exc:  # noqa: BLE001 - what the model records
            out.append(type(exc).__name__)
    return out


def _title_all(writer) -> list[str]:
    results = [writer.write(COLLECTION, max_attempts=3, similarity=None) for _ in PRODUCTS]
    return ["ok" if r.accepted else (r.error.split(":")[0] if r.error else "rejected") for r in results]


# Faults that are the endpoint's: retried by the client, counted by the breaker.
# name -> (script step played forever, error recorded, HTTP requests per failed call)
ENDPOINT_FAULTS = {
    "timeout": (("sleep", 3 * TIMEOUT), "APITimeoutError", RETRIES + 1),
    "http_500": (("status", 500), "InternalServerError", RETRIES + 1),
    "http_503": (("status", 503), "InternalServerError", RETRIES + 1),
    "429_after_retries": (("retry_after", 0.2), "RateLimitError", RETRIES + 1),
    "truncated_body": (("truncated", GOOD), "APIConnectionError", RETRIES + 1),
    "slow_tokens": (("trickle", (GOOD, 0.02)), "APITimeoutError", RETRIES + 1),
    "invalid_json_body": (("raw", b'{"choices": [{"message": '), "InvalidResponseError", 1),
    "not_a_completion": (("json", {"detail": "upstream says no"}), "InvalidResponseError", 1),
}


@pytest.mark.parametrize("fault", ENDPOINT_FAULTS)
@pytest.mark.parametrize("client", ["extractor", "title_writer"])
def test_endpoint_fault_opens_the_breaker_in_bounded_time_and_stops_calling(fault, client):
    step, error, per_call = ENDPOINT_FAULTS[fault]
    with FaultServer(default=step) as server:
        caller = _extractor(server.base_url) if client == "extractor" else _writer(server.base_url)
        started = time.monotonic()
        got = (_extract_all if client == "extractor" else _title_all)(caller)
        elapsed = time.monotonic() - started
        sent = len(server.requests)
    assert got == [error] * THRESHOLD + ["CircuitOpenError"] * (len(PRODUCTS) - THRESHOLD)
    assert sent == THRESHOLD * per_call  # not one request after the breaker opened
    assert caller.endpoint.is_open and caller.endpoint.refused == len(PRODUCTS) - THRESHOLD
    assert elapsed < THRESHOLD * PER_CALL + (1.0 if fault == "429_after_retries" else 0) + SLACK, elapsed


@pytest.mark.parametrize("client", ["extractor", "title_writer"])
def test_endpoint_down_from_the_start_costs_seconds(client):
    url = closed_port_url()
    caller = _extractor(url) if client == "extractor" else _writer(url)
    started = time.monotonic()
    got = (_extract_all if client == "extractor" else _title_all)(caller)
    assert got == ["APIConnectionError"] * THRESHOLD + ["CircuitOpenError"] * (len(PRODUCTS) - THRESHOLD)
    assert caller.calls == THRESHOLD
    assert time.monotonic() - started < THRESHOLD * PER_CALL + SLACK


@pytest.mark.parametrize("client", ["extractor", "title_writer"])
def test_server_dying_mid_run_opens_the_breaker_after_the_answers_it_gave(client):
    answer = ("content", GOOD) if client == "extractor" else (
        lambda path, body: ("content", "5" if "Rate" in body["messages"][0]["content"] else "Blue Tshirts"))
    answers = 2 if client == "extractor" else 4  # a title is a call and a judge call
    with FaultServer([answer] * answers + [("die", None)]) as server:
        caller = _extractor(server.base_url) if client == "extractor" else _writer(server.base_url)
        got = (_extract_all if client == "extractor" else _title_all)(caller)
        sent = len(server.requests)
    assert got == ["ok", "ok"] + ["APIConnectionError"] * THRESHOLD + ["CircuitOpenError"] * 3
    assert sent == answers + 1  # the request it died on; afterwards the port is closed
    assert caller.calls == answers + THRESHOLD


@pytest.mark.parametrize("client", ["extractor", "title_writer"])
def test_a_slow_token_server_is_cut_at_the_deadline(client):
    """Per-read timeouts never fire on a server that sends a byte every 20 ms; the deadline does."""
    with FaultServer(default=("trickle", (GOOD, 0.02))) as server:
        caller = _extractor(server.base_url) if client == "extractor" else _writer(server.base_url)
        started = time.monotonic()
        if client == "extractor":
            with pytest.raises(Exception, match="timed out"):
                caller.extract(PRODUCTS[0])
        else:
            assert caller.write(COLLECTION, similarity=None).error.startswith("APITimeoutError")
        elapsed = time.monotonic() - started
    assert len(json.dumps(chat_response(GOOD))) * 0.02 > 5 * TIMEOUT  # unbounded, it would take this long
    assert elapsed < PER_CALL + 1.0, elapsed


def test_429_retry_after_is_honoured_once_by_the_client_only():
    """One retry policy: the client's. It waits the server's Retry-After, then succeeds: 2 requests."""
    with FaultServer([("retry_after", 1), ("content", GOOD)]) as server:
        extractor = _extractor(server.base_url)
        assert extractor.extract(PRODUCTS[0])
    assert len(server.requests) == 2 and extractor.calls == 1
    assert server.requests[1]["t"] - server.requests[0]["t"] >= 0.95


def test_title_writer_makes_one_call_per_failure_no_stacked_retries():
    """A failed title call is 1 + max_retries requests, never tenacity x client retries."""
    with FaultServer(default=("status", 500)) as server:
        writer = _writer(server.base_url)
        result = writer.write(COLLECTION, max_attempts=3, similarity=None)
    assert result.error.startswith("InternalServerError") and not result.accepted
    assert len(server.requests) == RETRIES + 1 and writer.calls == 1
    assert [a["error"] is not None for a in result.attempts] == [True]  # no outcome: not final


# Answers that are the model's, not the endpoint's: not counted by the breaker, never cached.
@pytest.mark.parametrize("step, error", [
    (("content", json.dumps({"attributes": [{"type": "smell", "value": "roses", "confidence": 0.5}]})), "SchemaError"),
    (("content", "not json at all"), "SchemaError"),
    (("json", {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}), "SchemaError"),
])
def test_extractor_bad_answers_are_errors_without_opening_the_breaker(step, error):
    with FaultServer(default=step) as server:
        extractor = _extractor(server.base_url)
        started = time.monotonic()
        got = _extract_all(extractor)
        sent = len(server.requests)
    assert got == [error] * len(PRODUCTS)
    assert sent == 3 * len(PRODUCTS)  # re-asked schema_attempts times, no backoff, no transport retry
    assert not extractor.endpoint.is_open
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("step", [
    ("json", {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}),
    ("content", "   "),
])
def test_title_writer_empty_answers_are_error_attempts_never_an_outcome(step):
    with FaultServer(default=step) as server:
        writer = _writer(server.base_url)
        result = writer.write(COLLECTION, max_attempts=3, similarity=None)
    assert not result.accepted and result.error.startswith("EmptyAnswerError")
    assert [a["error"] is not None for a in result.attempts] == [True, True, True]
    assert len(server.requests) == 3 and not writer.endpoint.is_open


def test_a_success_resets_the_consecutive_count():
    script = [("status", 500)] * 2 * (RETRIES + 1) + [("content", GOOD)] + [("status", 500)] * 2 * (RETRIES + 1)
    with FaultServer(script, default=("content", GOOD)) as server:
        got = _extract_all(_extractor(server.base_url))
    assert got[:5] == ["InternalServerError", "InternalServerError", "ok", "InternalServerError", "InternalServerError"]
    assert "CircuitOpenError" not in got


def test_errors_never_carry_the_key():
    """A provider echoing the key in its error message: the recorded error is redacted."""
    from ml.extractors import redact

    with FaultServer([("error", (401, f"Incorrect API key provided: {SECRET}"))]) as server:
        with pytest.raises(Exception) as caught:
            _extractor(server.base_url).extract(PRODUCTS[0])
    recorded = f"{type(caught.value).__name__}: {caught.value}"
    assert SECRET in recorded and SECRET not in redact(recorded)
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"  # sent to the endpoint only


def test_breaker_is_shared_per_endpoint_and_threshold_configurable(monkeypatch):
    from ml.llm_client import LLMEndpoint

    monkeypatch.setenv("PINLANDING_LLM_BREAKER_THRESHOLD", "2")
    assert LLMSettings.from_env().breaker_threshold == 2
    assert LLMSettings.from_env(breaker_threshold="7").breaker_threshold == 7  # dbt var wins
    url = closed_port_url()
    a, b = LLMEndpoint(url, settings=LLMSettings.from_env()), LLMEndpoint(url, settings=LLMSettings.from_env())
    assert a.breaker is b.breaker  # extraction and titles in one run share it


# --------------------------------------------------------------------------------- end to end

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCHEMA = "pinlanding"
SAMPLE = 8
E2E_THRESHOLD = 3
SELECT = ["dbt", "build", "--select", "llm_extraction_cache", "collection_title_attempts", "int_collection_titles"]


def healthy(path, body):
    """A healthy vision + title model: valid attributes, a title of the attribute values, a 5."""
    if body.get("response_format"):
        return ("content", GOOD)
    system = body["messages"][0]["content"]
    if system.startswith("Rate"):
        return ("content", "5")
    values = [pair.split(": ", 1)[1] for pair in body["messages"][-1]["content"].split("; ")]
    return ("content", " ".join(w[:1].upper() + w[1:] for v in values for w in v.split()))


def _title_prompt(body) -> str | None:
    if body.get("response_format") or body["messages"][0]["content"].startswith("Rate"):
        return None
    return body["messages"][-1]["content"]


def _run(args, env, timeout=900):
    import resource

    started, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([str(a) for a in args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                          timeout=timeout)
    proc.seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU of the run (JVM included): load-independent
    proc.cpu_seconds = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    if proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc


def _table(root: Path, name: str) -> list[dict]:
    """A warehouse table's rows, read from its Parquet files (no second Spark process on Derby)."""
    import pyarrow.dataset as ds

    return ds.dataset(root / "data" / "warehouse" / f"{SCHEMA}.db" / name, format="parquet").to_table().to_pylist()


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, real_catalog):
    from tests.integration.feed_builder import build_feed
    from ml.titles import prompt_attributes

    root = tmp_path_factory.mktemp("llm_faults")
    build_feed(real_catalog, root / "catalog")
    env = dict(os.environ, PINLANDING_DATA_DIR=str(root / "data"), PINLANDING_CATALOG_DIR=str(root / "catalog"),
               DBT_TARGET_PATH=str(root / "target"), DBT_LOG_PATH=str(root / "logs"), PYSPARK_PYTHON=sys.executable,
               PINLANDING_LLM_BACKEND="openai", PINLANDING_LLM_SAMPLE_SIZE=str(SAMPLE), OPENAI_MODEL="test-vision",
               OPENAI_API_KEY=SECRET, PINLANDING_LLM_BREAKER_THRESHOLD=str(E2E_THRESHOLD),
               PINLANDING_LLM_TIMEOUT_S="10", PINLANDING_LLM_MAX_RETRIES="1",
               PINLANDING_LLM_BREAKER_RESET_S="3600")  # no half-open trial between extraction and titles
    env.pop("MLFLOW_TRACKING_URI", None)
    lenient = ["--min-image-valid-rate", "0.5", "--vars", "{min_attribute_products: 3, min_products: 3}",
               "--train-config", PROJECT_DIR / "ml/configs/tiny.yaml"]
    out = {}
    # 1. the endpoint answers 500 to everything, from the start
    with FaultServer(default=("status", 500)) as server:
        out["dead"] = _run([BIN / "pinlanding", "run", *lenient], dict(env, OPENAI_BASE_URL=server.base_url))
        out["dead_requests"] = len(server.requests)
    out["after_dead"] = {"cache": _table(root, "llm_extraction_cache"), "titles": _table(root, "int_collection_titles")}
    # 2. healthy for a while, then the server dies mid-run
    answers = SAMPLE + 2 * 6  # every product, then six titles (a title call and a judge call each)
    with FaultServer([healthy] * answers + [("die", None)]) as server:
        out["dying"] = _run([BIN / "pinlanding", *SELECT], dict(env, OPENAI_BASE_URL=server.base_url))
    final = {(r["collection_id"], r["attribute_key"]) for r in _table(root, "collection_title_attempts") if r["final"]}
    out["after_dying"] = [dict(r, done=(r["collection_id"], r["attribute_key"]) in final)
                          for r in _table(root, "int_collection_candidates") if r["contradiction_reason"] is None]
    # 3. a healthy server: only the gaps are asked
    with FaultServer(default=healthy) as server:
        out["healthy"] = _run([BIN / "pinlanding", *SELECT], dict(env, OPENAI_BASE_URL=server.base_url))
        out["healthy_bodies"] = [r["body"] for r in server.requests]
    out["after_healthy"] = {"cache": _table(root, "llm_extraction_cache"),
                            "titles": _table(root, "int_collection_titles")}
    out["prompt_of"] = prompt_attributes
    # what it cost, for the log (pytest -s) and for anyone looking at the run's folder
    lines = [ln for name in ("dead", "dying", "healthy") for ln in out[name].stdout.splitlines()
             if ln.startswith(("LLM extraction", "collection titles", "pipeline "))]
    timings = {name: {"wall_s": round(out[name].seconds, 1), "cpu_s": round(out[name].cpu_seconds, 1)}
               for name in ("dead", "dying", "healthy")}
    (root / "timings.json").write_text(json.dumps({"seconds": timings, "llm_lines": lines}, indent=2))
    print(f"\nllm faults e2e: {timings}\n" + "\n".join(lines))
    return {"root": root, "env": env, "out": out}


@pytest.mark.integration
def test_dead_endpoint_costs_seconds_and_every_item_is_accounted_for(e2e):
    out = e2e["out"]
    dead = out["dead"].stdout
    # the LLM models' own time: bounded by the breaker (old code: ~6.5 s a product, hours for titles)
    seconds = [float(s) for s in re.findall(r"(?:LLM extraction \(openai\)|collection titles): .*? in ([\d.]+)s", dead)]
    assert len(seconds) == 2 and sum(seconds) < 60, seconds
    # the breaker is the run's: extraction opened it, titles never called the endpoint
    assert out["dead_requests"] == E2E_THRESHOLD * 2  # 1 + max_retries requests per failed call
    assert "circuit breaker OPEN" in dead
    cache = out["after_dead"]["cache"]
    assert len(cache) == SAMPLE and all(r["status"] == "error" for r in cache)
    assert sum(r["error"].startswith("InternalServerError") for r in cache) == E2E_THRESHOLD
    assert sum(r["error"].startswith("CircuitOpenError") for r in cache) == SAMPLE - E2E_THRESHOLD
    titles = out["after_dead"]["titles"]
    assert titles and {r["held_back_reason"] for r in titles} <= {"title_error", "contradiction"}
    assert all(r["held_back_detail"] for r in titles)
    assert any(r["held_back_detail"].startswith("CircuitOpenError") for r in titles)


@pytest.mark.integration
def test_a_server_dying_mid_run_leaves_gaps_and_the_next_run_fills_exactly_them(e2e):
    out = e2e["out"]
    done = {r["attribute_key"] for r in out["after_dying"] if r["done"]}
    gaps = {r["attribute_key"] for r in out["after_dying"] if not r["done"]}
    assert done and gaps
    bodies = out["healthy_bodies"]
    assert not [b for b in bodies if b.get("response_format")]  # every product was answered before it died
    asked = {_title_prompt(b) for b in bodies} - {None}
    assert asked == {out["prompt_of"](k) for k in gaps}  # the gaps, all of them and only them
    assert "circuit breaker OPEN" in out["dying"].stdout
    cache = out["after_healthy"]["cache"]
    assert {r["product_id"] for r in cache if r["status"] == "ok"} == {r["product_id"] for r in cache}
    assert len({r["product_id"] for r in cache}) == SAMPLE
    titles = out["after_healthy"]["titles"]
    assert all(r["title"] or r["held_back_reason"] for r in titles)
    assert not [r for r in titles if r["held_back_reason"] == "title_error"]


@pytest.mark.integration
def test_the_api_key_appears_nowhere(e2e):
    out = e2e["out"]
    for name in ("dead", "dying", "healthy"):
        assert SECRET not in out[name].stdout and SECRET not in out[name].stderr, name
    needle = SECRET.encode()
    roots = [e2e["root"] / "data", e2e["root"] / "target", e2e["root"] / "logs",
             PROJECT_DIR / "logs", PROJECT_DIR / "target"]
    searched = 0
    for root in roots:
        for path in (root.rglob("*") if root.is_dir() else []):
            if path.is_file() and not path.is_symlink():
                searched += 1
                assert needle not in path.read_bytes(), path
    assert searched > 100  # the warehouse, mlflow.db, mlartifacts, dbt's target/ and logs were read
    assert (e2e["root"] / "data" / "mlflow.db").is_file()
