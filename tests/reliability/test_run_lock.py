"""One writer per data directory: a second `pinlanding` that writes fails fast, names the holder and
changes nothing; the lock of a run killed with -9 is gone with it (an OS lock, not a pid file)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.reliability.conftest import PINLANDING, PROJECT_DIR, RUN_ARGS, run_env, run_ok, site_files, start

BUSY = 75  # pinlanding.locking.BUSY_EXIT_CODE


def _contend(env, *args) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run([PINLANDING, *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300)
    return proc, time.monotonic() - started


HOLD = """
import sys, time
from pathlib import Path
from pinlanding.locking import run_lock
with run_lock(Path(sys.argv[1]), "pinlanding run"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_os_releases_the_lock_of_a_holder_killed_with_sigkill(tmp_path):
    """No Spark: a process holding the lock, a contender, kill -9, and the next writer gets in."""
    env = dict(os.environ, PINLANDING_DATA_DIR=str(tmp_path))
    env.pop("PINLANDING_LOCK_WAIT", None)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy, seconds = _contend(env, "publish")
        assert busy.returncode == BUSY and f"in use by pid {holder.pid}" in busy.stderr and seconds < 10
        holder.kill()
        holder.wait()
        after, _ = _contend(env, "publish")
        # past the lock: it fails on what it finds (no marts were ever built here), not on the lock
        assert after.returncode == 1 and "MartNotFoundError" in after.stderr, after.stderr[-2000:]
        assert "in use by" not in after.stderr
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.integration
def test_a_second_writer_fails_fast_and_a_killed_holder_leaves_no_lock(reference):
    root = reference["root"]
    data, env = root / "data", run_env(root)
    site_before = site_files(data / "site")
    mlflow_before = (data / "mlflow.db").stat().st_mtime_ns

    holder = start(root, ["run", *RUN_ARGS], env, "lock-holder")
    assert holder.wait_until(lambda: holder.saw("== ingest"), 120)
    for args in (["run", *RUN_ARGS], ["publish"], ["ingest"], ["dbt", "build"], ["train"], ["check"]):
        proc, seconds = _contend(env, *args)
        assert proc.returncode == BUSY, (args, proc.stdout[-2000:], proc.stderr[-2000:])
        message = proc.stderr
        assert f"in use by pid {holder.pid} (`pinlanding run`" in message, message
        assert f"tail --pid={holder.pid}" in message and "--wait-lock" in message
        assert seconds < 30, f"pinlanding {args[0]} took {seconds:.0f}s to give up"  # no Spark was started
        assert "SparkSession" not in proc.stdout + proc.stderr
    # queueing: wait up to N seconds for the holder, then give up the same way
    proc, seconds = _contend(env, "--wait-lock", "3", "publish")
    assert proc.returncode == BUSY and seconds >= 3 and "after waiting 3s" in proc.stderr
    assert holder.proc.poll() is None, "the contenders disturbed the running pipeline"
    # nothing the contenders could have written changed (the holder is still in its first steps)
    assert site_files(data / "site") == site_before
    assert (data / "mlflow.db").stat().st_mtime_ns == mlflow_before

    holder.kill_group()  # kill -9: the kernel drops its lock
    proc, seconds = _contend(env, "publish")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert site_files(data / "site") == site_before  # same marts, same site
    run_ok(root, ["--wait-lock", "0", "ingest"], env, "lock-after")  # a Spark writer gets it too
