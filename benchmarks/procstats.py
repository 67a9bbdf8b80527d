"""Run a child process and measure it: wall time and the peak RSS of its whole process tree
(Python driver + Spark JVM + Python workers), sampled every 100 ms."""

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


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(argv: list[str], **popen_kwargs) -> Measured:
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_kwargs)
    peak, stop = 0, threading.Event()

    def sample():
        nonlocal peak
        proc = psutil.Process(child.pid)
        while not stop.is_set():
            peak = max(peak, tree_rss(proc))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = child.stdout.read()
    code = child.wait()
    stop.set()
    sampler.join()
    return Measured(output, code, time.perf_counter() - started, peak / 2**20)
