"""The shared warehouse: a Spark Connect server (`make warehouse`) that owns the metastore, with
`pinlanding run`, `dbt show` and a dashboard-style mart reader working against it at the same time.

Real parts only: the Connect server from the pyspark wheel, dbt through the adapter, the pipeline
on a small slice of the real catalog with the tiny training config. The server binds 127.0.0.1 and
is stopped by its pid even when a test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.cluster.servers import free_port, wait_for
from tests.integration.feed_builder import build_feed

pytestmark = pytest.mark.integration

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY = ["--train-config", str(PROJECT_DIR / "ml/configs/tiny.yaml"), "--min-image-valid-rate", "0.5",
        "--vars", "{min_attribute_products: 3, min_products: 3, llm_sample_size: 2}"]


def _run(args, env, timeout=600):
    return subprocess.run([str(a) for a in args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, real_catalog):
    root = tmp_path_factory.mktemp("shared")
    build_feed(real_catalog, root / "catalog")
    env = dict(os.environ, PINLANDING_DATA_DIR=str(root / "data"), PINLANDING_CATALOG_DIR=str(root / "catalog"),
               PINLANDING_CONNECT_PORT=str(free_port()), PINLANDING_DRIVER_MEMORY="3g",
               DBT_TARGET_PATH=str(root / "target"), DBT_LOG_PATH=str(root / "logs"),
               PYSPARK_PYTHON=sys.executable, PINLANDING_LLM_BACKEND="local")
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SPARK_REMOTE", None)
    env.pop("PINLANDING_TARGET", None)
    started = _run([BIN / "python", "-m", "pinlanding.connect_server", "start"], env, timeout=240)
    pid_files = list((root / "data").glob("spark-pinlanding-*.pid"))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert len(pid_files) == 1
        yield {"root": root, "env": dict(env, PINLANDING_TARGET="connect"), "server_env": env,
               "pid": int(pid_files[0].read_text()), "started": started}
    finally:
        _run([BIN / "python", "-m", "pinlanding.connect_server", "stop"], env, timeout=120)
        for pid_file in pid_files:  # whatever happened above, nothing is left running
            pid = int(pid_file.read_text()) if pid_file.exists() else None
            if pid and psutil.pid_exists(pid):
                psutil.Process(pid).kill()


@pytest.fixture(scope="module")
def concurrent_run(warehouse):
    """`pinlanding run` through the server while other clients query the warehouse."""
    env = warehouse["env"]
    started = time.monotonic()
    pipeline = subprocess.Popen([str(BIN / "pinlanding"), "run", *TINY], cwd=PROJECT_DIR, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Once the feed has landed, a second client asks the warehouse while the run goes on.
        wait_for(lambda: (warehouse["root"] / "data/warehouse/pinlanding_raw.db/raw_feed_loads").is_dir(),
                 timeout=300, what="the pipeline to land the feed")
        show = _run([BIN / "dbt", "show", "--inline",
                     "select count(*) as n from {{ source('catalog', 'raw_products') }}", "--output", "json"], env)
        running_during_show = pipeline.poll() is None
        output, _ = pipeline.communicate(timeout=900)
    finally:
        if pipeline.poll() is None:
            pipeline.kill()
    reader = _run([BIN / "python", "-c",
                   "from pinlanding.marts import read_mart, mart_location;"
                   "f = read_mart('collections'); print('rows', len(f)); print(mart_location('collections'))"], env)
    return {"pipeline_rc": pipeline.returncode, "output": output, "show": show,
            "running_during_show": running_during_show, "reader": reader,
            "seconds": time.monotonic() - started}


def test_server_listens_on_loopback_only_and_records_its_pid(warehouse):
    server = psutil.Process(warehouse["pid"])
    assert server.is_running() and "java" in server.name()
    listening = [c for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening, "the server listens on no port"
    port = int(warehouse["server_env"]["PINLANDING_CONNECT_PORT"])
    assert port in {c.laddr.port for c in listening}
    assert all(c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for c in listening), listening
    assert list((warehouse["root"] / "data").glob("spark-pinlanding-*.out")), "no server log under data/"


def test_second_start_reuses_the_running_server(warehouse):
    again = _run([BIN / "python", "-m", "pinlanding.connect_server", "start"], warehouse["server_env"])
    assert again.returncode == 0, again.stderr
    assert f"pid {warehouse['pid']}" in again.stdout


def test_pipeline_runs_through_the_server_while_dbt_show_reads(concurrent_run):
    assert concurrent_run["pipeline_rc"] == 0, concurrent_run["output"][-6000:]
    show = concurrent_run["show"]
    assert show.returncode == 0, show.stdout[-3000:] + show.stderr[-3000:]
    assert concurrent_run["running_during_show"], "dbt show finished only after the pipeline: not concurrent"
    assert '"n":' in show.stdout


def test_no_static_config_warnings_through_connect(concurrent_run):
    assert "CANNOT_MODIFY_STATIC_CONFIG" not in concurrent_run["output"]
    assert "CANNOT_MODIFY_STATIC_CONFIG" not in concurrent_run["show"].stdout + concurrent_run["show"].stderr


def test_marts_and_site_come_through_the_server(concurrent_run, warehouse):
    reader = concurrent_run["reader"]
    assert reader.returncode == 0, reader.stderr[-3000:]
    rows = int(reader.stdout.split("rows ")[1].split()[0])
    assert rows > 0
    assert "target connect" in reader.stdout  # read through Spark Connect, not from local files
    site = warehouse["root"] / "data/site"
    assert (site / "index.html").is_file() and list(site.glob("c/*/index.html"))


def test_stop_ends_the_server_by_its_pid(warehouse, concurrent_run):
    stopped = _run([BIN / "python", "-m", "pinlanding.connect_server", "stop"], warehouse["server_env"], timeout=120)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    wait_for(lambda: not psutil.pid_exists(warehouse["pid"]), timeout=60, what="the server to exit")
    assert not list((warehouse["root"] / "data").glob("spark-pinlanding-*.pid"))
