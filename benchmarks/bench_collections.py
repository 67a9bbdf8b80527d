"""Collections side by side, on the warehouse `make run` built (full catalog by default):

    .venv/bin/python benchmarks/bench_collections.py [--repeats 3]

Prints
- precision@10 against merchant data: this pipeline's feeds vs a BM25 search of each title over
  product text (the search-log stand-in), from the collection_precision model;
- coverage: published collections vs the facet-only baseline (gender x article type x colour pages
  with the same min_products), from collection_facet_baseline;
- title throughput of the latest title run (collection_title_attempts);
- matching speed: the feed-generation SQL (int_collection_feed_matches, compiled by dbt) vs a naive
  Spark cross join of products x collections computing the same matches, both on the same tables,
  each executed to a no-op sink `--repeats` times (best time kept).

Uses the embedded metastore: run it when no other process (dbt, make run) uses the data directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))


def best_time(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def naive_matches(spark, schema: str):
    """Every product against every valid collection: the cross join the paper's 92% is measured against."""
    from pyspark.sql import functions as F

    products = (spark.table(f"{schema}.product_attributes_assigned").groupBy("product_id")
                .agg(F.map_from_entries(F.collect_list(F.struct("attribute_id", "score"))).alias("scores")))
    collections = (spark.table(f"{schema}.int_collection_titles").where("held_back_reason is null")
                   .select("collection_id", "n_attributes", "anchor_attribute_id",
                           F.transform("attributes", lambda a: a["attribute_id"]).alias("ids")))
    pairs = products.crossJoin(collections)
    matched = F.filter("ids", lambda i: F.map_contains_key(F.col("scores"), i))
    pairs = (pairs.withColumn("matched", matched)
             .withColumn("matched_attributes", F.size("matched"))
             .withColumn("mean_score", F.aggregate(F.transform("matched", lambda i: F.col("scores")[i]),
                                                   F.lit(0.0), lambda acc, x: acc + x) / F.col("matched_attributes")))
    return pairs.where((F.col("matched_attributes") == F.col("n_attributes"))
                       | ((F.col("n_attributes") >= 2) & (F.col("matched_attributes") == F.col("n_attributes") - 1)
                          & F.array_contains("matched", F.col("anchor_attribute_id"))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from pinlanding import cli, settings

    settings.pin_environment()
    if not cli.dbt_invoke(["compile", "--select", "int_collection_feed_matches"]):
        print("dbt compile failed", file=sys.stderr)
        return 1
    from pinlanding.warehouse import spark_session

    spark = spark_session()
    schema = settings.target_schema()
    one = lambda q: spark.sql(q).collect()[0]  # noqa: E731

    precision = one(f"select count(*) as n, avg(pipeline_precision) as pipeline, avg(bm25_precision) as bm25 "
                    f"from {schema}.collection_precision")
    status = {r.status: r.n for r in spark.sql(
        f"select status, count(*) as n from {schema}.collections group by status").collect()}
    facets = one(f"select count_if(is_full_facet) as full_facet, count(*) as all_subsets "
                 f"from {schema}.collection_facet_baseline")
    # the latest title run: attempts after the last pause of more than 2 minutes between attempts
    titles = one(f"""
        with gaps as (select created_at, created_at - lag(created_at) over (order by created_at) > interval 2 minutes
                             as new_run
                      from {schema}.collection_title_attempts),
        latest as (select * from {schema}.collection_title_attempts
                   where created_at >= (select coalesce(max(created_at), timestamp'1970-01-01') from gaps where new_run)
                     and status <> 'error')
        select count(distinct collection_id) as collections, count(*) as calls,
               unix_timestamp(max(created_at)) - unix_timestamp(min(created_at)) as seconds,
               sum(latency_s) as llm_seconds
        from latest""")

    compiled = next((PROJECT_DIR / "target" / "compiled").rglob("int_collection_feed_matches.sql")).read_text()
    optimized = spark.sql(compiled)
    naive = naive_matches(spark, schema)
    n_optimized, n_naive = optimized.count(), naive.count()
    t_optimized = best_time(lambda: optimized.write.format("noop").mode("overwrite").save(), args.repeats)
    t_naive = best_time(lambda: naive.write.format("noop").mode("overwrite").save(), args.repeats)
    n_products = one(f"select count(distinct product_id) as n from {schema}.product_attributes_assigned").n
    n_collections = one(f"select count(*) as n from {schema}.int_collection_titles where held_back_reason is null").n

    published = status.get("published", 0)
    result = {
        "precision_at_10": {"collections": precision.n, "pipeline": precision.pipeline, "bm25_baseline": precision.bm25},
        "collections": status,
        "facet_baseline": {"gender_x_article_type_x_colour": facets.full_facet, "all_facet_subsets": facets.all_subsets},
        "coverage_ratio": published / facets.full_facet if facets.full_facet else None,
        "coverage_ratio_all_subsets": published / facets.all_subsets if facets.all_subsets else None,
        "titles": {"collections": titles.collections, "llm_calls": titles.calls,
                   "llm_seconds": titles.llm_seconds,
                   "titles_per_s": titles.collections / titles.llm_seconds if titles.llm_seconds else None},
        "matching": {"products": n_products, "collections": n_collections, "matches": n_optimized,
                     "naive_matches": n_naive, "feed_sql_s": t_optimized, "naive_cross_join_s": t_naive,
                     "speedup": t_naive / t_optimized, "time_reduction": 1 - t_optimized / t_naive},
    }
    print(f"precision@10 (merchant data as truth, {precision.n} published collections):")
    print(f"  pipeline feeds          {precision.pipeline:.3f}")
    print(f"  BM25 title search       {precision.bm25:.3f}")
    print(f"collections: {status}")
    print(f"coverage: {published} published vs {facets.full_facet} facet pages (gender x article type x colour) "
          f"= {result['coverage_ratio']:.2f}x; vs {facets.all_subsets} pages from every facet subset "
          f"= {result['coverage_ratio_all_subsets']:.2f}x")
    if titles.llm_seconds:
        print(f"titles (latest run): {titles.collections} collections, {titles.calls} attempts, "
              f"{titles.llm_seconds:.0f} s in the LLM -> {result['titles']['titles_per_s']:.2f} titles/s")
    print(f"matching ({n_products} products x {n_collections} collections, best of {args.repeats}):")
    print(f"  feed SQL (anchor join + score map){t_optimized:.2f} s  ({n_optimized} matches)")
    print(f"  naive cross join                  {t_naive:.2f} s  ({n_naive} matches)")
    print(f"  speed-up {t_naive / t_optimized:.1f}x, time reduction {100 * (1 - t_optimized / t_naive):.0f}%")
    if n_optimized != n_naive:
        print("WARNING: the two methods disagree on the number of matches", file=sys.stderr)
        return 1
    print("RESULT " + json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
