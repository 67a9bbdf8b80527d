-- The curated vocabulary: one row per canonical attribute after normalisation, synonyms,
-- frequency filter, blocklist, semantic dedup and safety review. attribute_id is a hash of
-- (type, canonical key), so it stays the same across runs while the attribute exists.

with merges as (

    select * from {{ ref('int_attribute_merges') }}

),

members as (

    select c.*, m.canonical_key, m.similarity
    from {{ ref('int_attribute_candidates') }} as c
    inner join merges as m
        on c.attribute_type = m.attribute_type
       and c.value_key = m.value_key

),

product_counts as (

    select mentions.attribute_type, merges.canonical_key, count(distinct mentions.product_id) as product_frequency
    from {{ ref('int_attribute_mentions') }} as mentions
    inner join merges
        on mentions.attribute_type = merges.attribute_type
       and mentions.value_key = merges.value_key
    group by mentions.attribute_type, merges.canonical_key

),

canonical as (

    select
        attribute_type,
        canonical_key,
        max(case when value_key = canonical_key then display_value end) as canonical_value,
        array_sort(array_distinct(flatten(collect_list(raw_values)))) as aliases,
        array_sort(collect_list(value_key)) as merged_keys,
        array_sort(array_distinct(flatten(collect_list(source_backends)))) as source_backends,
        bool_or(has_catalog_evidence) as has_catalog_evidence,
        avg(mean_confidence) as mean_confidence
    from members
    group by attribute_type, canonical_key

),

decisions as (

    select attribute_type, {{ normalize_attribute_value('value') }} as value_key, lower(decision) as decision
    from {{ ref('attribute_review_decisions') }}

),

reviewed as (

    select
        c.*,
        p.product_frequency,
        d.decision,
        -- The merchant's own data vouches for catalog values; values only an LLM proposed are new
        -- to the catalog and wait for a reviewer (the paper's safety review).
        case when not c.has_catalog_evidence then 'only LLM evidence' end as review_reason
    from canonical as c
    inner join product_counts as p
        on c.attribute_type = p.attribute_type
       and c.canonical_key = p.canonical_key
    left join decisions as d
        on c.attribute_type = d.attribute_type
       and c.canonical_key = d.value_key

)

select
    concat('attr_', substr(sha2(concat(attribute_type, ':', canonical_key), 256), 1, 16)) as attribute_id,
    attribute_type,
    canonical_key,
    canonical_value,
    aliases,
    merged_keys,
    product_frequency,
    source_backends,
    mean_confidence,
    case
        when decision = 'reject' then 'rejected'
        when decision = 'approve' then 'active'
        when review_reason is not null then 'pending_review'
        else 'active'
    end as status,
    case
        when decision is not null then concat('reviewer decision: ', decision)
        else review_reason
    end as status_reason
from reviewed
