-- Vocabulary size per type after each curation step (for the dashboard and the closing note).

with raw as (
    select attribute_type, count(distinct lower(trim(raw_value))) as n
    from {{ ref('int_attribute_mentions') }} group by attribute_type
),
normalised as (
    select attribute_type, count(*) as n from {{ ref('int_attribute_candidates') }} group by attribute_type
),
frequent as (
    select attribute_type, count(*) as n from {{ ref('int_attribute_candidates') }}
    where product_count >= {{ var('min_attribute_products') }} group by attribute_type
),
deduplicated as (
    select attribute_type, count(distinct canonical_key) as n from {{ ref('int_attribute_merges') }} group by attribute_type
),
active as (
    select attribute_type, count(*) as n from {{ ref('attribute_vocabulary') }} where status = 'active' group by attribute_type
)

select
    t.attribute_type,
    coalesce(raw.n, 0) as raw_values,
    coalesce(normalised.n, 0) as after_normalisation,
    coalesce(frequent.n, 0) as after_frequency_filter,
    coalesce(deduplicated.n, 0) as after_blocklist_and_dedup,
    coalesce(active.n, 0) as after_safety_review
from {{ ref('attribute_types') }} as t
left join raw on t.attribute_type = raw.attribute_type
left join normalised on t.attribute_type = normalised.attribute_type
left join frequent on t.attribute_type = frequent.attribute_type
left join deduplicated on t.attribute_type = deduplicated.attribute_type
left join active on t.attribute_type = active.attribute_type
