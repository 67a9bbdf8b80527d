-- Collection metrics of this build in long form (metric, dimension, value) for BI dashboards:
--   collections                          by status (published / duplicate / held_back)
--   held_back                            by reason
--   collections_by_attribute_type        published collections using each attribute type
--   collections_by_size                  published collections by product_count bucket
--   product_coverage_by_attribute_type   share of products in a published collection using the type
--   product_coverage                     share of products in at least one published collection
--   collection_size_p50 / _mean, mean_feed_score, feed_partial_share
--   precision_at_10                      pipeline vs bm25_baseline (merchant data as truth)
--   facet_baseline_collections, coverage_vs_facet_baseline (vs full facet triples; vs all subsets)
--   vocabulary_active                    active attributes after curation

with collections as (

    select * from {{ ref('collections') }}

),

published as (

    select * from collections where status = 'published'

),

feeds as (

    select f.*
    from {{ ref('collection_feeds') }} as f
    inner join published as p on f.collection_id = p.collection_id

),

n_products as (

    select count(*) as n from {{ ref('int_products') }}

),

published_types as (

    select p.collection_id, t.attribute_type
    from published as p
    lateral view explode(p.attribute_types) t as attribute_type

),

metrics as (

    select 'collections' as metric, status as dimension, cast(count(*) as double) as value
    from collections group by status

    union all
    select 'held_back', held_back_reason, count(*)
    from collections where status = 'held_back' group by held_back_reason

    union all
    select 'collections_by_attribute_type', attribute_type, count(distinct collection_id)
    from published_types group by attribute_type

    union all
    select 'collections_by_size',
        case when product_count < 50 then '1: <50' when product_count < 200 then '2: 50-199'
             when product_count < 1000 then '3: 200-999' else '4: 1000+' end,
        count(*)
    from published group by 2

    union all
    select 'product_coverage_by_attribute_type', pt.attribute_type, count(distinct f.product_id) / max(n.n)
    from feeds as f
    inner join published_types as pt on f.collection_id = pt.collection_id
    cross join n_products as n
    group by pt.attribute_type

    union all
    select 'product_coverage', 'all', count(distinct f.product_id) / max(n.n)
    from feeds as f cross join n_products as n

    union all
    select 'collection_size_p50', 'all', percentile_approx(product_count, 0.5) from published
    union all
    select 'collection_size_mean', 'all', avg(product_count) from published
    union all
    select 'mean_feed_score', 'all', avg(mean_score) from feeds
    union all
    select 'feed_partial_share', 'all', avg(case when match_type = 'partial' then 1.0 else 0.0 end) from feeds

    union all
    select 'precision_at_10', 'pipeline', avg(pipeline_precision) from {{ ref('collection_precision') }}
    union all
    select 'precision_at_10', 'bm25_baseline', avg(bm25_precision) from {{ ref('collection_precision') }}

    union all
    select 'facet_baseline_collections', case when is_full_facet then 'gender x article_type x colour' else 'coarser facet subsets' end, count(*)
    from {{ ref('collection_facet_baseline') }} group by 2
    union all
    select 'coverage_vs_facet_baseline', 'gender x article_type x colour',
        (select count(*) from published)
        / nullif((select count(*) from {{ ref('collection_facet_baseline') }} where is_full_facet), 0)
    union all
    select 'coverage_vs_facet_baseline', 'all facet subsets',
        (select count(*) from published) / nullif((select count(*) from {{ ref('collection_facet_baseline') }}), 0)

    union all
    select 'vocabulary_active', 'all', count(*) from {{ ref('attribute_vocabulary') }} where status = 'active'

)

select
    metric,
    coalesce(dimension, 'none') as dimension,
    cast(value as double) as value,
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as computed_at
from metrics
