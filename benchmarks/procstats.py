"""Run a child process and measure it: wall time and the peak RSS of its whole process tree
(Python driver + Spark JVM + Python workers), sampled every 100 ms; the RSS per kind of process."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass
class Measured:
    output: str
    returncode: int
    wall_s: float
    peak_rss_mib: float


def process_kind(p: psutil.Process) -> str:
    """Which part of the pipeline a process is, for the peak-RSS breakdown."""
    name = p.name()
    if name == "java":
        return "Spark JVM"
    if "llama" in name:
        return "llama.cpp"
    try:
        cmdline = " ".join(p.cmdline())
    except psutil.Error:  # a zombie or a process we may not read: still counted, by its name
        return name
    if "pyspark.daemon" in cmdline or "pyspark.worker" in cmdline or "pyspark/daemon" in cmdline:
        return "Spark Python workers"
    return "pipeline Python (CLI, dbt)" if "python" in name or "pinlanding" in cmdline or "dbt" in cmdline else name


def tree_rss(proc: psutil.Process, kinds: dict | None = None) -> tuple[int, dict[str, int]]:
    """(RSS of the process tree, RSS per process kind); `kinds` caches process_kind per process."""
    total, parts = 0, {}
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, {}
    for p in procs:
        try:
            rss = p.memory_info().rss
            key = (p.pid, p.create_time(), p.name())  # the name too: spark-submit's shell execs java in place
            kind = kinds[key] if kinds is not None and key in kinds else process_kind(p)
            if kinds is not None:
                kinds[key] = kind
        except psutil.Error:
            continue
        total += rss
        parts[kind] = parts.get(kind, 0) + rss
    return total, parts


def run_measured(argv: list[str], **popen_kwargs) -> Measured:
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_kwargs)
    peak, stop = 0, threading.Event()

    def sample():
        nonlocal peak
        proc = psutil.Process(child.pid)
        while not stop.is_set():
            peak = max(peak, tree_rss(proc)[0])
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = child.stdout.read()
    code = child.wait()
    stop.set()
    sampler.join()
    return Measured(output, code, time.perf_counter() - started, peak / 2**20)
