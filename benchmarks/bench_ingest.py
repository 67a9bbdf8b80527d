"""Ingest alone: lines/s of `pinlanding.ingest.ingest` (parse, land Parquet, log the batch).

    .venv/bin/python benchmarks/synthetic_catalog.py --products 1000000 --out /tmp/cat1m
    .venv/bin/python benchmarks/bench_ingest.py --catalog /tmp/cat1m                  # as shipped
    .venv/bin/python benchmarks/bench_ingest.py --catalog /tmp/cat1m --one-partition  # for comparison
    .venv/bin/python benchmarks/synthetic_catalog.py --products 1000000 --out /tmp/cat1m-8 --shards 8
    .venv/bin/python benchmarks/bench_ingest.py --catalog /tmp/cat1m-8               # a sharded feed

Runs in a scratch data directory (its own embedded metastore) with the Spark session opened
first, then calls ingest `--calls` times with force=True: the first call creates the raw table
in a fresh JVM, later ones replace its files (what a daily run does), with a warm JVM.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True,
                        help="catalog directory holding products.jsonl.gz or its shards products-*.jsonl.gz")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--one-partition", action="store_true",
                        help="parse in the feed's one read task whatever its size (the behaviour before spreading)")
    parser.add_argument("--data-dir", help="scratch data directory (default: a new temporary one)")
    args = parser.parse_args()

    os.environ["PINLANDING_DATA_DIR"] = args.data_dir or tempfile.mkdtemp(prefix="pinlanding-bench-ingest-")
    import pinlanding.ingest as ingest_module
    from pinlanding import settings
    from pinlanding.warehouse import spark_session

    if args.one_partition:
        ingest_module.INGEST_BYTES_PER_PARTITION = 1 << 62
    settings.pin_environment()
    spark = spark_session()
    files = ingest_module.feed_files(Path(args.catalog))
    print(f"feed {files[0] if len(files) == 1 else f'{len(files)} shards {files[0].name} ...'}"
          f" ({sum(f.stat().st_size for f in files) / 2**20:.0f} MiB), data dir {os.environ['PINLANDING_DATA_DIR']}, "
          f"{'one partition' if args.one_partition else 'spread when large'}")
    for call in range(1, args.calls + 1):
        result = ingest_module.ingest(spark, Path(args.catalog), settings.raw_schema(), force=True)
        print(f"call {call}: {result.lines_read} lines ({result.load_errors} unreadable) in {result.seconds:.1f} s"
              f" -> {result.lines_read / result.seconds:,.0f} lines/s", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
