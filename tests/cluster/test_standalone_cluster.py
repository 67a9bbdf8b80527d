"""The `cluster` target, run for real: a Spark standalone master + worker and a PostgreSQL metastore,
all throwaway and on loopback, and `pinlanding run` against them from a driver in this machine.

What this proves beyond the embedded default:
- the metastore lives in PostgreSQL (DataNucleus creates its tables; the password comes from the
  environment and never reaches dbt's output or target/);
- the warehouse is wherever PINLANDING_WAREHOUSE_DIR says (not data/warehouse);
- executors are separate JVMs and Python workers started by the worker, on the venv's Python;
- scoring ships the model inside the task: the executors unpack it in their own temp directory;
- publish reads the marts through Spark (the metastore's answer), not a local path;
- `spark.cores.max` leaves room for a second application (a reader) while one runs.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.cluster.servers import accepting, free_port, wait_for
from tests.integration.feed_builder import build_feed

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PASSWORD = "metastore-pw-3f9c1e"  # the throwaway cluster's; must never show up in output or target/
TINY = ["--train-config", str(PROJECT_DIR / "ml/configs/tiny.yaml"), "--min-image-valid-rate", "0.5",
        "--vars", "{min_attribute_products: 3, min_products: 3, llm_sample_size: 2}"]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"PostgreSQL's {name} not found: `make setup` installs Debian's postgresql")
    return found[-1]


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; CI and this machine run tests as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _spark_class(*args: str) -> list[str]:
    import pyspark

    return [str(Path(pyspark.__file__).parent / "bin" / "spark-class"), *args]


class Processes:
    """Every process a test starts, killed (with its children) at the end whatever happened."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, args, log: Path, env=None) -> subprocess.Popen:
        proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, real_catalog):
    root = tmp_path_factory.mktemp("cluster")
    root.chmod(0o755)
    procs = Processes()
    pg_port, master_port = free_port(), free_port()
    # PostgreSQL runs as the postgres user, which cannot enter pytest's private temp dirs.
    pg_home = Path(tempfile.mkdtemp(prefix="pinlanding-pg-"))
    pgdata, pwfile = pg_home / "data", pg_home / "pwfile"
    pg_log = root / "postgres.log"
    try:
        # PostgreSQL, owned by the postgres user, loopback only, password auth.
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(pg_home, "postgres")
            shutil.chown(pwfile, "postgres")
        subprocess.run(_as_postgres([_pg_bin("initdb"), "-D", str(pgdata), "-U", "pinlanding",
                                     "--pwfile", str(pwfile), "--auth=scram-sha-256", "-E", "UTF8"]),
                       check=True, capture_output=True)
        pwfile.unlink()
        procs.start(_as_postgres([_pg_bin("postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(pg_port),
                                  "-k", str(pg_home)]), pg_log)
        wait_for(lambda: accepting(pg_port), timeout=60, what="PostgreSQL")
        pg_env = dict(os.environ, PGPASSWORD=PASSWORD)
        wait_for(lambda: subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "pinlanding",
                                         "metastore"], env=pg_env, capture_output=True).returncode == 0,
                 timeout=30, what="createdb metastore")

        # Spark standalone master + worker from the pyspark wheel, on loopback.
        import pyspark

        spark_env = dict(os.environ, SPARK_HOME=str(Path(pyspark.__file__).parent), SPARK_LOCAL_IP="127.0.0.1",
                         PYSPARK_PYTHON=sys.executable, SPARK_NO_DAEMONIZE="1")
        procs.start(_spark_class("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                 "--port", str(master_port), "--webui-port", str(free_port())),
                    root / "master.log", spark_env)
        wait_for(lambda: accepting(master_port), timeout=90, what="the Spark master")
        worker_tmp = root / "worker-tmp"  # executors' temp dir: where they unpack the shipped model
        worker_tmp.mkdir()
        procs.start(_spark_class("org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                 "--cores", "2", "--memory", "5g", "--webui-port", str(free_port()),
                                 "--work-dir", str(root / "work"), f"spark://127.0.0.1:{master_port}"),
                    root / "worker.log", dict(spark_env, TMPDIR=str(worker_tmp)))
        wait_for(lambda: "Successfully registered with master" in (root / "worker.log").read_text(errors="replace"),
                 timeout=90, what="the Spark worker to register")

        build_feed(real_catalog, root / "catalog")
        env = dict(os.environ, PINLANDING_TARGET="cluster", SPARK_MASTER_URL=f"spark://127.0.0.1:{master_port}",
                   PINLANDING_METASTORE_URL=f"jdbc:postgresql://127.0.0.1:{pg_port}/metastore",
                   PINLANDING_METASTORE_USER="pinlanding", DBT_ENV_SECRET_METASTORE_PASSWORD=PASSWORD,
                   PINLANDING_WAREHOUSE_DIR=f"file://{root / 'warehouse'}", PINLANDING_CORES_MAX="1",
                   PINLANDING_EXECUTOR_MEMORY="2g", PINLANDING_DRIVER_MEMORY="2g",
                   PINLANDING_DATA_DIR=str(root / "data"), PINLANDING_CATALOG_DIR=str(root / "catalog"),
                   DBT_TARGET_PATH=str(root / "target"), DBT_LOG_PATH=str(root / "logs"),
                   PYSPARK_PYTHON=sys.executable, PINLANDING_LLM_BACKEND="local")
        for key in ("MLFLOW_TRACKING_URI", "SPARK_REMOTE"):
            env.pop(key, None)
        yield {"root": root, "env": env, "pg_port": pg_port, "pg_env": pg_env, "worker_tmp": worker_tmp,
               "pids": [p.pid for p in procs.procs]}
    finally:
        procs.stop_all()
        shutil.rmtree(pg_home, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_run(cluster):
    run = subprocess.run([str(BIN / "pinlanding"), "run", *TINY], cwd=PROJECT_DIR, env=cluster["env"],
                         capture_output=True, text=True, timeout=1500)
    return run


def _psql(cluster, sql: str) -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(cluster["pg_port"]), "-U", "pinlanding",
                           "-d", "metastore", "-At", "-c", sql], env=cluster["pg_env"],
                          capture_output=True, text=True, check=True).stdout


def test_pipeline_runs_on_the_standalone_cluster(cluster_run):
    assert cluster_run.returncode == 0, cluster_run.stdout[-6000:] + cluster_run.stderr[-6000:]


def test_metastore_is_postgresql_and_warehouse_is_the_configured_location(cluster, cluster_run):
    tables = set(_psql(cluster, 'select "TBL_NAME" from "TBLS"').split())
    assert {"raw_products", "stg_products", "product_attribute_scores", "collections", "collection_feeds"} <= tables
    locations = _psql(cluster, 'select "LOCATION" from "SDS" s join "TBLS" t on t."SD_ID" = s."SD_ID"').split()
    assert locations and all(loc.startswith(f"file:{cluster['root'] / 'warehouse'}") for loc in locations), locations
    assert not (cluster["root"] / "data" / "warehouse").exists()
    assert not (cluster["root"] / "data" / "metastore_db").exists()


def test_executors_ran_the_python_models_with_the_shipped_model(cluster, cluster_run):
    # The worker started executors (their stderr under the work dir) ...
    assert list((cluster["root"] / "work").glob("app-*/*/stderr"))
    # ... whose Python workers unpacked the champion from the task's bytes into their own temp dir.
    unpacked = list(cluster["worker_tmp"].glob("pinlanding-model-*/model/MLmodel"))
    assert unpacked, "executors did not load the model shipped with the scoring task"


def test_site_is_published_from_marts_read_through_spark(cluster, cluster_run):
    site = cluster["root"] / "data" / "site"
    assert (site / "index.html").is_file() and list(site.glob("c/*/index.html"))
    reader = subprocess.run([str(BIN / "python"), "-c",
                             "from pinlanding.marts import read_mart, mart_location;"
                             "print(len(read_mart('collection_feeds'))); print(mart_location('collections'))"],
                            cwd=PROJECT_DIR, env=cluster["env"], capture_output=True, text=True, timeout=600)
    assert reader.returncode == 0, reader.stderr[-3000:]
    assert int(reader.stdout.split()[0]) > 0 and "target cluster" in reader.stdout


def test_metastore_password_never_reaches_output_or_target(cluster, cluster_run):
    assert PASSWORD not in cluster_run.stdout + cluster_run.stderr
    for folder in ("target", "logs", "data"):
        for path in (cluster["root"] / folder).rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert PASSWORD.encode() not in path.read_bytes(), f"password leaked into {path}"


def test_every_server_listens_on_loopback_only(cluster, cluster_run):
    servers = [psutil.Process(pid) for pid in cluster["pids"]]
    checked = 0
    for proc in [p for s in servers for p in (s, *s.children(recursive=True))]:
        for conn in proc.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                checked += 1
                assert conn.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1"), (proc.cmdline()[:3], conn)
    assert checked >= 3  # PostgreSQL, the master (RPC + UI), the worker
