"""Score the whole catalog in the warehouse with the champion model; print products/s and peak RSS.

    .venv/bin/python benchmarks/bench_scoring.py     # after `make run` (needs int_products and a champion)
    .venv/bin/python benchmarks/bench_scoring.py --vars "{scoring_precision: float32}"

Runs `dbt run --select product_attribute_scores --full-refresh` (every product rescored) in a
child process and samples the RSS of its process tree (driver, Spark JVM, Python workers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from procstats import run_measured

PROJECT_DIR = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
from pinlanding import cli, settings
settings.pin_environment()
ok = cli.dbt_invoke(["run", "--select", "product_attribute_scores", "--full-refresh"], dbt_vars=sys.argv[1] or None)
from pinlanding.warehouse import spark_session
s = spark_session()
t = s.table(settings.target_schema() + ".product_attribute_scores")
print("RESULT " + json.dumps({"ok": ok, "products": t.select("product_id").distinct().count(), "rows": t.count()}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vars", default="", help="dbt vars for the run (YAML), e.g. '{scoring_precision: float32}'")
    args = parser.parse_args(argv)
    run = run_measured([sys.executable, "-c", CHILD, args.vars], cwd=PROJECT_DIR)
    output, code, wall, peak = run.output, run.returncode, run.wall_s, run.peak_rss_mib
    line = next((l for l in output.splitlines() if l.startswith("RESULT ")), None)
    result = json.loads(line[len("RESULT "):]) if line else {}
    timing = json.loads((PROJECT_DIR / "target" / "run_results.json").read_text()) if code == 0 else {"results": []}
    model_s = next((r["execution_time"] for r in timing["results"]
                    if r["unique_id"].endswith(".product_attribute_scores")), float("nan"))
    if code != 0 or not result.get("ok"):
        print(output[-5000:])
        return 1
    print(f"products scored:     {result['products']} ({result['rows']} rows, top-K per product)")
    print(f"scoring model time:  {model_s:.1f} s -> {result['products'] / model_s:.0f} products/s")
    print(f"wall time:           {wall:.1f} s (incl. JVM start, model download and load)")
    print(f"peak RSS:            {peak:.0f} MiB (driver + JVM + Python workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
