"""Ingest and stage the full catalog in a scratch data directory; print wall time, rows/s, peak RSS.

    make bench        # or: .venv/bin/python benchmarks/bench_ingest_stage.py [--catalog-dir DIR]

Runs `pinlanding ingest` then `dbt build` of everything up to the load marts (staging, quarantine,
int_products, catalog_load_summary and their tests) in one child process, sampling the RSS of the whole process tree (Python
driver + Spark JVM + Python workers) every 100 ms. Ingest is also timed on its own, with the
SparkSession already started (JVM start is not ingest's cost), as feed lines per second.

    .venv/bin/python benchmarks/bench_ingest_stage.py --ingest-only   # ingest lines/s, no dbt build
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from procstats import run_measured

PROJECT_DIR = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from pinlanding import settings
from pinlanding.ingest import ingest
from pinlanding.warehouse import spark_session
settings.pin_environment()
t_start = time.perf_counter(); s = spark_session(); t0 = time.perf_counter()
cold = ingest(s, settings.catalog_dir(), settings.raw_schema(), force=True)  # creates the raw tables
t1 = time.perf_counter()
load = ingest(s, settings.catalog_dir(), settings.raw_schema(), force=True)  # a reload: what runs measure
print(f"INGEST session_s={t0-t_start:.1f} cold_s={cold.seconds:.2f} ingest_s={load.seconds:.2f} "
      f"lines={load.lines_read} rows={load.rows_landed} load_errors={load.load_errors}", flush=True)
if INGEST_ONLY:
    sys.exit(0)
from pinlanding import cli
ok = cli.dbt_invoke(["build", "--select", "+catalog_load_summary", "+catalog_reject_reasons",
                     "--indirect-selection", "cautious"])
t2 = time.perf_counter()
staged = s.table(settings.target_schema() + ".stg_products").count()
quarantined = s.table(settings.target_schema() + ".quarantine_products").count()
images = s.table(settings.target_schema() + ".stg_product_images").count()
print(f"RESULT ingest_s={t1-t0:.1f} dbt_build_s={t2-t1:.1f} staged={staged} quarantined={quarantined} images_checked={images} ok={ok}")
sys.exit(0 if ok else 1)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog-dir", default=os.environ.get(
        "PINLANDING_CATALOG_DIR", str(PROJECT_DIR.parent / "shared/data/fashion-catalog")))
    parser.add_argument("--ingest-only", action="store_true", help="time ingest alone (no dbt build)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinlanding-bench-") as scratch:
        env = dict(os.environ, PINLANDING_DATA_DIR=f"{scratch}/data", PINLANDING_CATALOG_DIR=args.catalog_dir,
                   DBT_TARGET_PATH=f"{scratch}/target", DBT_LOG_PATH=f"{scratch}/logs",
                   PYSPARK_PYTHON=sys.executable)
        env.setdefault("PINLANDING_DRIVER_MEMORY", "3g")
        child = f"INGEST_ONLY = {bool(args.ingest_only)}\n" + CHILD
        run = run_measured([sys.executable, "-c", child], cwd=PROJECT_DIR, env=env)
    output, code, wall, peak = run.output, run.returncode, run.wall_s, run.peak_rss_mib
    ingested = next((line for line in output.splitlines() if line.startswith("INGEST")), None)
    result = next((line for line in output.splitlines() if line.startswith("RESULT")), None)
    if code != 0 or ingested is None or (result is None and not args.ingest_only):
        print(output[-5000:])
        print(f"benchmark failed (exit {code})")
        return 1
    load = dict(item.split("=") for item in ingested.split()[1:])
    print(f"catalog:            {args.catalog_dir}")
    print(f"ingest:             {load['lines']} lines ({load['rows']} landed, {load['load_errors']} unreadable)"
          f" in {load['ingest_s']} s = {int(load['lines']) / float(load['ingest_s']):.0f} lines/s"
          f" (session start {load['session_s']} s not included; first load into an empty metastore"
          f" {load['cold_s']} s = {int(load['lines']) / float(load['cold_s']):.0f} lines/s)")
    if args.ingest_only:
        print(f"peak RSS:           {peak:.0f} MiB (driver + JVM + Python workers)")
        return 0
    fields = dict(item.split("=") for item in result.split()[1:])
    rows = int(fields["staged"]) + int(fields["quarantined"])
    print(f"rows in:            {rows} (staged {fields['staged']}, quarantined {fields['quarantined']})")
    print(f"photos checked:     {fields['images_checked']}")
    print(f"ingest (wall):      {fields['ingest_s']} s")
    print(f"dbt build:          {fields['dbt_build_s']} s (staging -> load marts, with tests)")
    print(f"wall time:          {wall:.1f} s (incl. JVM start)")
    print(f"rows per second:    {rows / wall:.0f} (end to end)")
    print(f"peak RSS:           {peak:.0f} MiB (driver + JVM + Python workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
