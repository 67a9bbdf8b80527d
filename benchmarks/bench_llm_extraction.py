"""Measure the embedded local LLM backend (llama.cpp + Gemma-3-270M) on N products against the
merchant's own attributes: precision and recall per attribute type, calls per second, and the
cache hit rate of a rerun. Prints the numbers.

    .venv/bin/python benchmarks/bench_llm_extraction.py --products 100

Runs the real pipeline in a scratch data directory (ingest, `dbt build` up to the extraction
cache, twice). Ground truth per product and type = the value keys (normalised + synonyms, as in
int_attribute_mentions) that the merchant's structured fields and merchant_attributes state.
A prediction counts for a type only when the merchant states that type for the product.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from pinlanding import cli, settings
settings.pin_environment()
cli.cmd_ingest(cli.build_parser().parse_args(["ingest"]))
select = ["--select", "+int_attribute_mentions"]
t0 = time.perf_counter(); ok1 = cli.dbt_invoke(["build", *select]); t1 = time.perf_counter()
from pinlanding.warehouse import spark_session
s = spark_session(); schema = settings.target_schema()
first = s.table(f"{schema}.llm_extraction_cache").count()
timing = json.load(open(sys.argv[1] + "/run_results.json"))
llm_s = next(r["execution_time"] for r in timing["results"] if r["unique_id"].endswith(".llm_extraction_cache"))
ok2 = cli.dbt_invoke(["build", "--select", "llm_extraction_cache"])
second = s.table(f"{schema}.llm_extraction_cache").count()
errors = s.table(f"{schema}.llm_extraction_cache").where("status != 'ok'").count()
rows = s.sql(f'''
  with llm as (select distinct product_id from {schema}.llm_extraction_cache where status = 'ok'),
  truth as (
    select m.product_id, m.attribute_type, m.value_key from {schema}.int_attribute_mentions m
    join llm using (product_id) where m.source_backend = 'catalog' and m.confidence >= 0.9),
  pred as (
    select m.product_id, m.attribute_type, m.value_key from {schema}.int_attribute_mentions m
    join llm using (product_id) where m.source_backend = 'local'),
  typed as (select distinct product_id, attribute_type from truth),
  judged as (select p.* from pred p join typed t using (product_id, attribute_type))
  select t.attribute_type,
         (select count(*) from judged j where j.attribute_type = t.attribute_type) as predicted,
         (select count(*) from truth x where x.attribute_type = t.attribute_type) as true_values,
         (select count(*) from judged j join truth x using (product_id, attribute_type, value_key)
            where j.attribute_type = t.attribute_type) as correct
  from (select distinct attribute_type from truth) t order by 1''').collect()
print("RESULT " + json.dumps({"first_calls": first, "rerun_new_calls": second - first, "errors": errors,
      "llm_seconds": llm_s, "ok": ok1 and ok2, "types": [r.asDict() for r in rows]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--catalog-dir", default=os.environ.get(
        "PINLANDING_CATALOG_DIR", str(PROJECT_DIR.parent / "shared/data/fashion-catalog")))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinlanding-llm-bench-") as scratch:
        env = dict(os.environ, PINLANDING_DATA_DIR=f"{scratch}/data", PINLANDING_CATALOG_DIR=args.catalog_dir,
                   DBT_TARGET_PATH=f"{scratch}/target", DBT_LOG_PATH=f"{scratch}/logs", PYSPARK_PYTHON=sys.executable,
                   PINLANDING_LLM_BACKEND="local", PINLANDING_LLM_SAMPLE_SIZE=str(args.products))
        proc = subprocess.run([sys.executable, "-c", CHILD, f"{scratch}/target"], cwd=PROJECT_DIR, env=env,
                              capture_output=True, text=True)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        print(proc.stdout[-4000:], proc.stderr[-4000:])
        return 1
    r = json.loads(line[len("RESULT "):])
    calls = r["first_calls"]
    print(f"products labelled:   {calls} (errors: {r['errors']})")
    print(f"LLM model time:      {r['llm_seconds']:.1f} s incl. server start -> {calls / r['llm_seconds']:.2f} calls/s")
    print(f"rerun:               {r['rerun_new_calls']} new calls -> cache hit rate "
          f"{1 - r['rerun_new_calls'] / max(calls, 1):.0%}")
    print(f"\n{'type':<14}{'predicted':>10}{'true':>8}{'correct':>9}{'precision':>11}{'recall':>8}")
    tp = pp = tt = 0
    for t in r["types"]:
        p = t["correct"] / t["predicted"] if t["predicted"] else float("nan")
        rc = t["correct"] / t["true_values"] if t["true_values"] else float("nan")
        tp, pp, tt = tp + t["correct"], pp + t["predicted"], tt + t["true_values"]
        print(f"{t['attribute_type']:<14}{t['predicted']:>10}{t['true_values']:>8}{t['correct']:>9}{p:>11.2f}{rc:>8.2f}")
    print(f"{'all':<14}{pp:>10}{tt:>8}{tp:>9}{tp / max(pp, 1):>11.2f}{tp / max(tt, 1):>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
