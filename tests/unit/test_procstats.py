"""The benchmarks' process-tree measurement (benchmarks/procstats.py): peak RSS of a child's whole
tree, and the per-kind breakdown bench_scale reports at its peak."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from procstats import process_kind, run_measured, tree_rss  # noqa: E402

# a child that holds ~200 MB and a grandchild, so the tree is more than one process
HOLD = ("import subprocess, sys, time; block = bytearray(200 * 2**20); "
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3)']); time.sleep(3); g.wait()")


def test_tree_rss_counts_every_process_and_splits_them_by_kind():
    child = subprocess.Popen([sys.executable, "-c", HOLD])
    try:
        proc = psutil.Process(child.pid)
        deadline = time.time() + 10
        while len(proc.children(recursive=True)) < 1 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        kinds = {}
        total, parts = tree_rss(proc, kinds)
        assert total >= 200 * 2**20
        assert set(parts) == {"pipeline Python (CLI, dbt)"} and len(kinds) == 2  # the child and its child
    finally:
        child.wait()


def test_spark_processes_are_told_apart():
    class Fake:
        def __init__(self, name, cmdline):
            self._name, self._cmdline = name, cmdline

        def name(self):
            return self._name

        def cmdline(self):
            return self._cmdline

    assert process_kind(Fake("java", ["java", "-cp", "x", "org.apache.spark.deploy.SparkSubmit"])) == "Spark JVM"
    assert process_kind(Fake("python3", ["python3", "-m", "pyspark.daemon"])) == "Spark Python workers"
    assert process_kind(Fake("llama-server", ["llama-server", "-m", "g.gguf"])) == "llama.cpp"
    assert process_kind(Fake("python", ["python", "-m", "pinlanding", "run"])) == "pipeline Python (CLI, dbt)"

    class Unreadable(Fake):
        def cmdline(self):
            raise psutil.AccessDenied(1)

    assert process_kind(Unreadable("sh", [])) == "sh"  # still counted, under its name


def test_run_measured_reports_the_peak_of_the_tree():
    measured = run_measured([sys.executable, "-c", HOLD])
    assert measured.returncode == 0 and measured.wall_s >= 3
    assert measured.peak_rss_mib >= 200
