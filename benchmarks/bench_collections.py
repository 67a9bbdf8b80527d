"""Collections side by side, on the warehouse `make run` built (full catalog by default):

    .venv/bin/python benchmarks/bench_collections.py [--repeats 3]

Prints
- precision@10 against merchant data: this pipeline's feeds vs a BM25 search of each title over
  product text (the search-log stand-in), from the collection_precision model; the same feeds
  restricted to the dual encoder's test-split products (never trained on: the honest number), the
  feeds as ordered before variants and brand diversity, and both by arity and anchor type;
- feeds a shopper scrolls: distinct products (variant groups) and brands on the first page
  (--page-size, 48) before vs after collapsing near-identical products and diversifying by brand;
- titles shared by two collections: kept by the broader, renamed, or held back (title_resolution);
- coverage: published collections vs the facet-only baseline (gender x article type x colour pages
  with the same min_products), from collection_facet_baseline;
- title throughput of the latest title run (collection_title_attempts);
- matching speed: the feed-generation SQL (int_collection_feed_matches, compiled by dbt) vs a naive
  Spark cross join of products x collections computing the same matches with the same per-pair
  expressions, both on the same tables, each executed to a no-op sink `--repeats` times (best time
  kept); the two outputs must be equal (row count and an order-free hash of every column), and
  equal to the feed SQL's earlier formulation (lambdas over the attribute array, not timed).

`--only matching` runs the last part alone, e.g. on a synthetic catalog's warehouse from bench_scale:

    PINLANDING_DATA_DIR=/tmp/pinlanding-bench-scale/runs/1000000/data DBT_TARGET_PATH=/tmp/target-1m \
        .venv/bin/python benchmarks/bench_collections.py --only matching --repeats 1

Uses the embedded metastore: run it when no other process (dbt, make run) uses the data directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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


def naive_matches(spark, schema: str, collections_table: str):
    """Every product against every valid collection: the cross join the paper's 92% is measured against.

    The same per-pair expressions as int_collection_feed_matches (score lookups in the product's map,
    matched count, mean score), so the two differ only in which pairs they evaluate: all of them
    here, only those sharing the collection's anchor attribute there. The anchor condition that the
    feed SQL gets from its join is a predicate here.
    """
    return spark.sql(f"""
        with collections as (
            select collection_id, n_attributes, anchor_attribute_id,
                   get(attributes, 0).attribute_id as attribute_id_1, get(attributes, 1).attribute_id as attribute_id_2,
                   get(attributes, 2).attribute_id as attribute_id_3
            from {collections_table} where held_back_reason is null),
        product_scores as (
            select product_id, map_from_entries(collect_list(struct(attribute_id, score))) as scores
            from {schema}.product_attributes_assigned group by product_id),
        pairs as (
            select c.*, p.product_id, map_contains_key(p.scores, c.anchor_attribute_id) as has_anchor,
                   p.scores[c.attribute_id_1] as score_1,
                   case when c.attribute_id_2 is not null then p.scores[c.attribute_id_2] end as score_2,
                   case when c.attribute_id_3 is not null then p.scores[c.attribute_id_3] end as score_3
            from product_scores as p cross join collections as c),
        counted as (
            select *, cast(score_1 is not null as int) + cast(score_2 is not null as int)
                      + cast(score_3 is not null as int) as matched_attributes
            from pairs)
        select collection_id, product_id,
               case when matched_attributes = n_attributes then 'full' else 'partial' end as match_type,
               matched_attributes, n_attributes,
               (cast(0 as double) + coalesce(score_1, 0) + coalesce(score_2, 0) + coalesce(score_3, 0))
                   / matched_attributes as mean_score
        from counted
        where has_anchor and (matched_attributes = n_attributes
                              or (n_attributes >= 2 and matched_attributes = n_attributes - 1))""")


def lambda_reference_matches(spark, schema: str, collections_table: str):
    """The feed SQL as it was written before 2026-11-23 (lambdas over each collection's attribute
    array; its evidence column now built in int_collection_feeds for kept cards only): an
    independently written reference whose output the current SQL must reproduce."""
    return spark.sql(f"""
        with collections as (
            select collection_id, n_attributes, anchor_attribute_id, attributes
            from {collections_table} where held_back_reason is null),
        assigned as (select product_id, attribute_id, score from {schema}.product_attributes_assigned),
        product_scores as (
            select product_id, map_from_entries(collect_list(struct(attribute_id, score))) as scores
            from assigned group by product_id),
        anchored_pairs as (
            select c.collection_id, c.n_attributes, c.attributes, a.product_id
            from collections as c inner join assigned as a on a.attribute_id = c.anchor_attribute_id),
        matched as (
            select p.collection_id, p.n_attributes, p.product_id,
                   filter(transform(p.attributes, x -> named_struct(
                       'attribute_type', x.attribute_type, 'attribute_id', x.attribute_id, 'value', x.value,
                       'score', s.scores[x.attribute_id])), e -> e.score is not null) as evidence
            from anchored_pairs as p inner join product_scores as s on p.product_id = s.product_id)
        select collection_id, product_id,
               case when size(evidence) = n_attributes then 'full' else 'partial' end as match_type,
               size(evidence) as matched_attributes, n_attributes,
               aggregate(evidence, cast(0 as double), (total, e) -> total + e.score) / size(evidence) as mean_score
        from matched
        where size(evidence) = n_attributes or (n_attributes >= 2 and size(evidence) = n_attributes - 1)""")


def fingerprint(frame) -> tuple:
    """(rows, order-free hash of every column): two methods agree when both are equal."""
    from pyspark.sql import functions as F

    row = frame.select(F.count(F.lit(1)).alias("n"),
                       F.sum(F.hash(*[F.col(c) for c in frame.columns])
                             .cast("decimal(38,0)")).alias("h")).collect()[0]
    return row.n, row.h


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=48, help="cards on a landing page's first page")
    parser.add_argument("--only", choices=["matching"],
                        help="measure only the feed SQL vs the naive cross join (any warehouse with matching built)")
    parser.add_argument("--collections", choices=["titled", "candidates"], default="titled",
                        help="matching: the titled collections (default) or every candidate without a "
                             "contradiction (for a warehouse built with llm_backend none)")
    args = parser.parse_args()

    from pinlanding import cli, settings

    settings.pin_environment()
    if not cli.dbt_invoke(["compile", "--select", "int_collection_feed_matches"]):
        print("dbt compile failed", file=sys.stderr)
        return 1
    from pinlanding.warehouse import spark_session

    spark = spark_session()
    schema = settings.target_schema()
    if args.only == "matching":
        matching = measure_matching(spark, schema, args.repeats, args.collections)
        return report_matching(matching, args.repeats, {"matching": matching})
    one = lambda q: spark.sql(q).collect()[0]  # noqa: E731

    precision = one(f"select count(*) as n, avg(pipeline_precision) as pipeline, avg(bm25_precision) as bm25, "
                    f"count(unseen_precision) as n_unseen, avg(unseen_precision) as unseen, "
                    f"avg(unseen_products) as unseen_products, avg(legacy_precision) as legacy, "
                    f"count(unseen_full_precision) as n_unseen_full, avg(unseen_full_precision) as unseen_full "
                    f"from {schema}.collection_precision")
    breakdown = [r.asDict() for r in spark.sql(f"""
        select breakdown, value, count(*) as collections, avg(pipeline_precision) as pipeline,
               count(unseen_precision) as unseen_collections, avg(unseen_precision) as unseen,
               avg(bm25_precision) as bm25
        from (select 'arity' as breakdown, cast(n_attributes as string) as value, * from {schema}.collection_precision
              union all
              select 'anchor_type', anchor_attribute_type, * from {schema}.collection_precision)
        group by breakdown, value order by breakdown, value""").collect()]
    # Why unseen products miss: per collection attribute a top-10 unseen product lacks in the merchant's
    # data, whether the merchant states another value of that type (contradicted: "Navy Blue" assigned,
    # "Blue" stated) or nothing of that type (unstated: the merchant data cannot judge it).
    misses_sql = f"""
        with published as (select collection_id, attribute_ids from {schema}.collections where status = 'published'),
        unseen as (select collection_id, product_id,
                          row_number() over (partition by collection_id order by position) as k
                   from {schema}.collection_feeds where model_split = 'test'),
        wanted as (select u.collection_id, u.product_id, explode(p.attribute_ids) as attribute_id
                   from unseen as u join published as p using (collection_id) where u.k <= 10),
        merchant as (select c.product_id, c.attribute_id, v.attribute_type, v.canonical_value
                     from {schema}.product_attributes_curated as c
                     join {schema}.attribute_vocabulary as v using (attribute_id)
                     where array_contains(c.source_backends, 'catalog')),
        missing as (select w.collection_id, w.product_id, v.attribute_type, v.canonical_value as assigned
                    from wanted as w join {schema}.attribute_vocabulary as v using (attribute_id)
                    left anti join merchant as m on m.product_id = w.product_id and m.attribute_id = w.attribute_id)
        select m.*, s.canonical_value as stated
        from missing as m left join merchant as s
          on s.product_id = m.product_id and s.attribute_type = m.attribute_type"""
    misses = spark.sql(misses_sql).toPandas()
    miss_types = (misses.assign(contradicted=misses["stated"].notna())
                  .drop_duplicates(["collection_id", "product_id", "attribute_type"])
                  .groupby("attribute_type")["contradicted"].agg(contradicted="sum", missed="count")
                  .assign(unstated=lambda t: t.missed - t.contradicted)
                  .sort_values("missed", ascending=False))
    miss_pairs = (misses.dropna(subset=["stated"]).drop_duplicates(["product_id", "attribute_type", "assigned", "stated"])
                  .groupby(["attribute_type", "assigned", "stated"]).size().sort_values(ascending=False).head(8))
    # (collection, product) pairs whose every miss is unstated: the merchant data cannot judge them
    only_unstated = int(misses.assign(stated_any=misses["stated"].notna())
                        .groupby(["collection_id", "product_id"])["stated_any"].any().eq(False).sum())
    page = args.page_size
    first_page = one(f"""
        with published as (select collection_id from {schema}.collections where status = 'published'),
        before as (select v.collection_id, count(*) as rows_, count(distinct v.variant_group) as products,
                          count(distinct lower(trim(v.brand))) as brands
                   from {schema}.int_collection_feed_variants as v join published using (collection_id)
                   where v.legacy_position <= {page} group by v.collection_id),
        after as (select f.collection_id, count(distinct f.product_id) as products,
                         count(distinct lower(trim(f.brand))) as brands,
                         sum(f.variant_count) as products_with_variants
                  from {schema}.collection_feeds as f join published using (collection_id)
                  where f.position <= {page} group by f.collection_id)
        select count(*) as collections, avg(b.rows_) as before_cards, avg(b.products) as before_products,
               avg(a.products) as after_products, avg(b.brands) as before_brands, avg(a.brands) as after_brands,
               avg(a.products_with_variants) as after_products_with_variants,
               avg(case when b.products < b.rows_ then 1.0 else 0.0 end) as before_share_with_repeats
        from before as b join after as a using (collection_id)""")
    variants = one(f"select count(*) as cards, sum(variant_count - 1) as folded, "
                   f"count_if(variant_count > 1) as cards_with_variants from {schema}.collection_feeds")
    title_resolution = {r.title_resolution: r.n for r in spark.sql(
        f"select coalesce(title_resolution, 'none') as title_resolution, count(*) as n "
        f"from {schema}.collections group by 1").collect()}
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

    matching = measure_matching(spark, schema, args.repeats, args.collections)

    published = status.get("published", 0)
    result = {
        "precision_at_10": {"collections": precision.n, "pipeline": precision.pipeline, "bm25_baseline": precision.bm25,
                            "unseen_collections": precision.n_unseen, "pipeline_unseen": precision.unseen,
                            "unseen_products_per_collection": precision.unseen_products,
                            "unseen_full_collections": precision.n_unseen_full,
                            "pipeline_unseen_full": precision.unseen_full,
                            "pipeline_before_feed_diversity": precision.legacy, "breakdown": breakdown,
                            "unseen_misses_by_type": miss_types.reset_index().to_dict("records"),
                            "unseen_products_only_unstated_misses": only_unstated},
        "first_page": {"page_size": page, **first_page.asDict()},
        "variants": variants.asDict(),
        "title_resolution": title_resolution,
        "collections": status,
        "facet_baseline": {"gender_x_article_type_x_colour": facets.full_facet, "all_facet_subsets": facets.all_subsets},
        "coverage_ratio": published / facets.full_facet if facets.full_facet else None,
        "coverage_ratio_all_subsets": published / facets.all_subsets if facets.all_subsets else None,
        "titles": {"collections": titles.collections, "llm_calls": titles.calls,
                   "llm_seconds": titles.llm_seconds,
                   "titles_per_s": titles.collections / titles.llm_seconds if titles.llm_seconds else None},
        "matching": matching,
    }
    print(f"precision@10 (merchant data as truth, {precision.n} published collections):")
    print(f"  pipeline feeds          {precision.pipeline:.3f}")
    print(f"  BM25 title search       {precision.bm25:.3f}")
    fmt = lambda v: "  n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"  pipeline, unseen only   {fmt(precision.unseen)}  (the feed's first 10 test-split products; "
          f"{precision.n_unseen} collections have any, {precision.unseen_products or 0:.1f} judged on average)")
    print(f"  pipeline, unseen full matches {fmt(precision.unseen_full)}  (the same among full matches only, "
          f"the make-up of a feed's first 10 positions; {precision.n_unseen_full} collections)")
    print(f"  pipeline, feed before variants + brand diversity {fmt(precision.legacy)}")
    print("  by          value          collections  pipeline  unseen (n)      bm25")
    for r in breakdown:
        print(f"  {r['breakdown']:<11} {r['value'] or '-':<14} {r['collections']:>11}  {fmt(r['pipeline'])}     "
              f"{fmt(r['unseen'])} ({r['unseen_collections']:>3})  {fmt(r['bm25'])}")
    if len(miss_types):
        print("  unseen misses by type (a top-10 unseen product lacks the attribute in merchant data):")
        print("    type            missed  contradicted  unstated")
        for t, r in miss_types.iterrows():
            print(f"    {t:<15} {r.missed:>6}  {r.contradicted:>12}  {r.unstated:>8}")
        print(f"    products whose only misses are unstated (merchant data silent, not judgeable): "
              f"{only_unstated}")
        print("    most common contradictions (assigned vs merchant's value): " + "; ".join(
            f"{t} {a!r} vs {b!r} x{n}" for (t, a, b), n in miss_pairs.items()))
    if first_page.collections:
        print(f"first page ({page} cards), mean over {first_page.collections} published collections:")
        print(f"  distinct products  before {first_page.before_products:.1f} (of {first_page.before_cards:.1f} rows)"
              f"  after {first_page.after_products:.1f} (+ variants: {first_page.after_products_with_variants:.1f}"
              f" products on the page)")
        print(f"  distinct brands    before {first_page.before_brands:.1f}  after {first_page.after_brands:.1f}")
    print(f"variants: {variants.folded or 0} products folded into {variants.cards_with_variants} of "
          f"{variants.cards} cards")
    print(f"titles: {title_resolution}")
    print(f"collections: {status}")
    print(f"coverage: {published} published vs {facets.full_facet} facet pages (gender x article type x colour) "
          f"= {result['coverage_ratio']:.2f}x; vs {facets.all_subsets} pages from every facet subset "
          f"= {result['coverage_ratio_all_subsets']:.2f}x")
    if titles.llm_seconds:
        print(f"titles (latest run): {titles.collections} collections, {titles.calls} attempts, "
              f"{titles.llm_seconds:.0f} s in the LLM -> {result['titles']['titles_per_s']:.2f} titles/s")
    return report_matching(matching, args.repeats, result)


CANDIDATES_VIEW = "bench_candidate_collections"


def measure_matching(spark, schema: str, repeats: int, collections: str = "titled") -> dict:
    """Feed SQL (as dbt compiled it) vs the naive cross join: same tables, same matches, no-op sink.

    collections="candidates" matches every candidate collection without a contradiction instead of
    the titled ones (int_collection_titles), so a warehouse built without an LLM (llm_backend none:
    no titles) still measures matching at its real collection count. Both methods read the same view.
    """
    target = Path(os.environ.get("DBT_TARGET_PATH") or PROJECT_DIR / "target")  # where dbt compiled it
    compiled_path = next((target / "compiled").rglob("int_collection_feed_matches.sql"))
    compiled = compiled_path.read_text()
    titles_table = f"{schema}.int_collection_titles"
    collections_table = titles_table
    if collections == "candidates":
        spark.sql(f"""create or replace temporary view {CANDIDATES_VIEW} as
                      select collection_id, n_attributes, anchor_attribute_id, attributes,
                             cast(null as string) as held_back_reason
                      from {schema}.int_collection_candidates where contradiction_reason is null""")
        if compiled.count(titles_table) != 1:
            raise SystemExit(f"expected one reference to {titles_table} in the compiled feed SQL")
        compiled = compiled.replace(titles_table, CANDIDATES_VIEW)
        collections_table = CANDIDATES_VIEW
    optimized = spark.sql(compiled)
    naive = naive_matches(spark, schema, collections_table)
    (n_optimized, h_optimized), (n_naive, h_naive) = fingerprint(optimized), fingerprint(naive)
    reference = fingerprint(lambda_reference_matches(spark, schema, collections_table))
    t_optimized = best_time(lambda: optimized.write.format("noop").mode("overwrite").save(), repeats)
    t_naive = best_time(lambda: naive.write.format("noop").mode("overwrite").save(), repeats)
    one = lambda q: spark.sql(q).collect()[0]  # noqa: E731
    assigned = one(f"select count(distinct product_id) as products, count(*) as n_rows "
                   f"from {schema}.product_attributes_assigned")
    n_products, n_rows = assigned.products, assigned.n_rows
    n_collections = one(f"select count(*) as n from {collections_table} where held_back_reason is null").n
    return {"products": n_products, "assigned_rows": n_rows, "collections": n_collections, "collection_set": collections,
            "matches": n_optimized, "naive_matches": n_naive, "same_matches": h_optimized == h_naive,
            "same_as_lambda_reference": (n_optimized, h_optimized) == reference,
            "feed_sql": str(compiled_path), "feed_sql_sha256": hashlib.sha256(compiled.encode()).hexdigest(),
            "feed_sql_s": t_optimized,
            "naive_cross_join_s": t_naive, "speedup": t_naive / t_optimized,
            "time_reduction": 1 - t_optimized / t_naive}


def report_matching(m: dict, repeats: int, result: dict) -> int:
    print(f"matching ({m['products']} products with {m['assigned_rows']} assigned attributes x "
          f"{m['collections']} {m['collection_set']} collections, best of {repeats}):")
    print(f"  feed SQL (anchor join + score map){m['feed_sql_s']:.2f} s  ({m['matches']} matches)")
    print(f"  naive cross join                  {m['naive_cross_join_s']:.2f} s  ({m['naive_matches']} matches)")
    print(f"  speed-up {m['speedup']:.1f}x, time reduction {100 * m['time_reduction']:.0f}%")
    print(f"  the feed SQL's matches equal the pre-2026-11-23 lambda formulation's: {m['same_as_lambda_reference']}"
          f" (compiled SQL {m['feed_sql']}, sha256 {m['feed_sql_sha256'][:12]})")
    if m["matches"] != m["naive_matches"] or not m["same_matches"] or not m["same_as_lambda_reference"]:
        print("WARNING: the methods disagree on the matches", file=sys.stderr)
        return 1
    print("RESULT " + json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
