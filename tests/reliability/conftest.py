"""Shared by the reliability tests: `pinlanding run` as a killable subprocess, and one reference run.

Every run is the real pipeline (Spark, dbt, GX, MLflow, llama.cpp) on the integration tests' small
slice of the real catalog, with the tiny training config. The reference run is uninterrupted; the
tests compare what the site reads (marts) and the site itself against it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.feed_builder import build_feed

PROJECT_DIR = Path(__file__).resolve().parents[2]
PINLANDING = str(Path(sys.executable).parent / "pinlanding")
SCHEMA = "pinlanding"
# this feed's photos are bad on purpose; its 206 products need a lower frequency filter
RUN_ARGS = ["--min-image-valid-rate", "0.5", "--vars", "{min_attribute_products: 3, min_products: 3}",
            "--train-config", str(PROJECT_DIR / "ml/configs/tiny.yaml")]
SITE_MARTS = ("collections", "collection_feeds", "collection_redirects", "collection_metrics")
# Values that are when/which run, not what was built: build times and ids of runs and loads.
VOLATILE_COLUMNS = {"computed_at", "content_changed_at", "first_published_at", "run_started_at", "run_id",
                    "batch_id", "loaded_at", "invocation_id"}
LASTMOD = re.compile(rb"<lastmod>[^<]*</lastmod>")

_live: list["PipelineProcess"] = []


class PipelineProcess:
    """A `pinlanding` command in its own process group (so SIGKILL reaches its JVM and llama.cpp),
    with its output collected line by line."""

    def __init__(self, args: list[str], env: dict, log_path: Path):
        self.started = time.monotonic()
        self.log_path = log_path
        self.proc = subprocess.Popen([PINLANDING, *args], cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _live.append(self)

    def _read(self) -> None:
        with self.log_path.open("a", buffering=1) as log:  # line-buffered: readable while it runs
            for line in self.proc.stdout:
                self.lines.append(line)
                log.write(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait_until(self, condition, timeout: float, poll: float = 0.02) -> bool:
        """True once condition() holds while the process still runs; False if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return self.proc.poll() is None
            if self.proc.poll() is not None:
                return False
            time.sleep(poll)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting; output so far:\n{self.output[-4000:]}")

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._reader.join(timeout=10)

    def wait(self, timeout: float = 1500) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def run_env(root: Path) -> dict:
    env = dict(os.environ, PINLANDING_DATA_DIR=str(root / "data"), PINLANDING_CATALOG_DIR=str(root / "catalog"),
               DBT_TARGET_PATH=str(root / "target"), DBT_LOG_PATH=str(root / "logs"),
               PYSPARK_PYTHON=sys.executable, PYTHONUNBUFFERED="1",
               PINLANDING_LLM_BACKEND="local", PINLANDING_LLM_SAMPLE_SIZE="6")
    env.setdefault("PINLANDING_DRIVER_MEMORY", "3g")
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PINLANDING_LOCK_WAIT", None)
    return env


def start(root: Path, args: list[str], env: dict | None = None, name: str = "run") -> PipelineProcess:
    return PipelineProcess(args, env or run_env(root), root / f"{name}.log")


def run_ok(root: Path, args: list[str], env: dict | None = None, name: str = "run") -> PipelineProcess:
    process = start(root, args, env, name)
    code = process.wait()
    assert code == 0, f"pinlanding {' '.join(args)} exited {code}:\n{process.output[-8000:]}"
    return process


def new_root(tmp_path_factory, name: str, real_catalog: Path) -> Path:
    root = tmp_path_factory.mktemp(name)
    build_feed(real_catalog, root / "catalog")
    return root


# ----------------------------------------------------------------------------- what the site reads


def _portable(text: str, data_dir: Path) -> str:
    """Each run has its own copy of the catalog: photo paths differ by that directory only."""
    return text.replace(str(data_dir.parent), "<run root>")


def mart_rows(data_dir: Path, name: str) -> list[str]:
    """The mart's rows (volatile columns dropped) as sorted canonical JSON, read from its Parquet.
    Floats are compared with a relative tolerance (`_same_rows`): float32 model scores and Spark's
    averages over shuffled partitions differ in the 7th-9th digit from run to run (BLAS kernels,
    summation order), the same data or not."""
    import pyarrow.dataset as ds

    table = ds.dataset(data_dir / "warehouse" / f"{SCHEMA}.db" / name, format="parquet",
                       ignore_prefixes=["_", "."]).to_table()
    frame = table.drop_columns([c for c in table.column_names if c in VOLATILE_COLUMNS]).to_pandas()
    records = json.loads(frame.to_json(orient="records", date_format="iso", double_precision=10))
    return sorted(_portable(json.dumps(r, sort_keys=True), data_dir) for r in records)


def site_files(site_dir: Path) -> dict[str, str]:
    """relative path -> sha256 of every site file. Sitemaps and the manifest's copy of their
    <lastmod> carry content_changed_at (when the build saw a collection change): compared without
    it. The manifest's photo cache records the catalog copy's paths and mtimes: only names kept."""
    hashes = {}
    for path in sorted(p for p in site_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(site_dir).as_posix()
        data = path.read_bytes()
        if rel.startswith("sitemap") and rel.endswith(".xml.gz"):
            data = LASTMOD.sub(b"", gzip.decompress(data))
        elif rel == "_publish_manifest.json":
            manifest = json.loads(data)
            manifest["sitemaps"] = [entry[0] for entry in manifest.get("sitemaps", [])]
            # the photo-hash cache is keyed by the catalog copy's path and file mtime
            manifest["images"] = sorted(entry[-1] for entry in manifest.get("images", {}).values())
            data = _portable(json.dumps(manifest, sort_keys=True), site_dir.parent).encode()
        hashes[rel] = hashlib.sha256(data).hexdigest()
    return hashes


def snapshot(data_dir: Path) -> dict:
    return {"marts": {name: mart_rows(data_dir, name) for name in SITE_MARTS},
            "site": site_files(data_dir / "site")}


def _without_floats(value):
    if isinstance(value, float):
        return None
    if isinstance(value, dict):
        return {k: _without_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_floats(v) for v in value]
    return value


def _close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def _same_rows(want: list[str], have: list[str]) -> bool:
    """Equal row sets: everything but floats exactly, floats to a relative 1e-5."""
    if want == have:
        return True
    def keyed(rows):
        parsed = [json.loads(r) for r in rows]
        return sorted(parsed, key=lambda r: json.dumps(_without_floats(r), sort_keys=True))
    return len(want) == len(have) and all(_close(a, b) for a, b in zip(keyed(want), keyed(have)))


def assert_same_as_reference(data_dir: Path, reference: dict) -> None:
    got = snapshot(data_dir)
    for name in SITE_MARTS:
        want, have = reference["marts"][name], got["marts"][name]
        assert _same_rows(want, have), (f"mart {name} differs from the uninterrupted run: "
                              f"{len(set(have) - set(want))} rows only here, {len(set(want) - set(have))} only there; "
                              f"e.g. {sorted(set(have) ^ set(want))[:2]}")
    want, have = reference["site"], got["site"]
    changed = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    assert not changed, f"{len(changed)} site files differ from the uninterrupted run, e.g. {changed[:5]}"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session", autouse=True)
def _stop_every_process_started():
    """Whatever a test leaves running (a run it meant to kill, a contender) dies with the session."""
    yield
    for process in _live:
        if process.proc.poll() is None:
            process.kill_group()


@pytest.fixture(scope="session")
def reference(tmp_path_factory, real_catalog) -> dict:
    """One uninterrupted cold `pinlanding run` (trains the tiny model, titles with the local LLM)."""
    root = new_root(tmp_path_factory, "reference", real_catalog)
    process = run_ok(root, ["run", *RUN_ARGS], name="reference")
    return {"root": root, "seconds": process.seconds, "snapshot": snapshot(root / "data"),
            "output": process.output}
