-- Collection metrics of this build in long form (metric, dimension, value) for BI dashboards:
--   collections                          by status (published / duplicate / held_back)
--   held_back                            by reason
--   collections_by_attribute_type        published collections using each attribute type
--   collections_by_size                  published collections by product_count bucket
--   product_coverage_by_attribute_type   share of products in a published collection using the type
--   product_coverage                     share of products in at least one published collection
--   collection_size_p50 / _mean, mean_feed_score, feed_partial_share
--   precision_at_10                      pipeline (the feed) vs bm25_baseline (merchant data as truth);
--                                        pipeline_unseen: the feed's first 10 test-split products
--                                        (model_split macro), the only ones the model never trained on;
--                                        pipeline_unseen_full: the same among full matches only;
--                                        pipeline_before_feed_diversity: the feed before variants/diversity
--   precision_at_10_collections          collections each precision averages over (pipeline, pipeline_unseen)
--   precision_at_10_by_arity / _unseen_by_arity              by number of attributes (1, 2, 3)
--   precision_at_10_by_anchor_type / _unseen_by_anchor_type  by anchor type (article_type, style, category)
--   feed_first_page_distinct_products    mean distinct products (variant groups) on a published feed's
--                                        first page (var feed_page_size, 48), before / after variants
--   feed_first_page_distinct_brands      mean distinct brands on that page, before / after
--   feed_variants_collapsed              products folded into another card as its variants (published feeds)
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

precision as (

    select *,
        nanvl(pipeline_precision, cast(null as double)) as p_all,
        nanvl(unseen_precision, cast(null as double)) as p_unseen,
        nanvl(unseen_full_precision, cast(null as double)) as p_unseen_full,
        nanvl(legacy_precision, cast(null as double)) as p_legacy
    from {{ ref('collection_precision') }}

),

{%- set page = var('feed_page_size', 48) %}

first_page_before as (

    select v.collection_id,
        count(distinct v.variant_group) as products,
        count(distinct lower(trim(v.brand))) as brands
    from {{ ref('int_collection_feed_variants') }} as v
    inner join published as p on v.collection_id = p.collection_id
    where v.legacy_position <= {{ page }}
    group by v.collection_id

),

first_page_after as (

    select collection_id,
        count(distinct product_id) as products,
        count(distinct lower(trim(brand))) as brands
    from feeds
    where position <= {{ page }}
    group by collection_id

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
    select 'precision_at_10', 'pipeline', avg(p_all) from precision
    union all
    select 'precision_at_10', 'pipeline_unseen', avg(p_unseen) from precision
    union all
    select 'precision_at_10', 'pipeline_unseen_full', avg(p_unseen_full) from precision
    union all
    select 'precision_at_10', 'pipeline_before_feed_diversity', avg(p_legacy) from precision
    union all
    select 'precision_at_10', 'bm25_baseline', avg(bm25_precision) from precision
    union all
    select 'precision_at_10_collections', 'pipeline', count(p_all) from precision
    union all
    select 'precision_at_10_collections', 'pipeline_unseen', count(p_unseen) from precision
    union all
    select 'precision_at_10_collections', 'pipeline_unseen_full', count(p_unseen_full) from precision
    union all
    select 'precision_at_10_by_arity', cast(n_attributes as string), avg(p_all) from precision group by n_attributes
    union all
    select 'precision_at_10_unseen_by_arity', cast(n_attributes as string), avg(p_unseen) from precision
    group by n_attributes
    union all
    select 'precision_at_10_by_anchor_type', coalesce(anchor_attribute_type, 'unknown'), avg(p_all) from precision
    group by anchor_attribute_type
    union all
    select 'precision_at_10_unseen_by_anchor_type', coalesce(anchor_attribute_type, 'unknown'), avg(p_unseen)
    from precision group by anchor_attribute_type

    union all
    select 'feed_first_page_distinct_products', 'before', avg(products) from first_page_before
    union all
    select 'feed_first_page_distinct_products', 'after', avg(products) from first_page_after
    union all
    select 'feed_first_page_distinct_brands', 'before', avg(brands) from first_page_before
    union all
    select 'feed_first_page_distinct_brands', 'after', avg(brands) from first_page_after
    union all
    select 'feed_variants_collapsed', 'all', coalesce(sum(variant_count - 1), 0) from feeds

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
