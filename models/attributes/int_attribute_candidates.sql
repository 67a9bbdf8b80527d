-- One row per (type, value_key): how many products carry it, from which backends, and the
-- display value (the raw spelling used by the most products).

with mentions as (

    select * from {{ ref('int_attribute_mentions') }}

),

spellings as (

    select attribute_type, value_key, raw_value, count(distinct product_id) as products
    from mentions
    group by attribute_type, value_key, raw_value

),

display as (

    select
        attribute_type,
        value_key,
        -- most products first, then alphabetical for a deterministic tie-break
        element_at(array_sort(collect_list(struct(-products as rank, raw_value as value))), 1).value as display_value,
        array_sort(collect_set(raw_value)) as raw_values
    from spellings
    group by attribute_type, value_key

)

select
    m.attribute_type,
    m.value_key,
    d.display_value,
    d.raw_values,
    count(distinct m.product_id) as product_count,
    array_sort(collect_set(m.source_backend)) as source_backends,
    count_if(m.source_backend = 'catalog') > 0 as has_catalog_evidence,
    -- products whose merchant fields (not mined text, not an LLM) state this value
    count(distinct case when m.source_backend = 'catalog' and m.confidence >= 0.9 then m.product_id end)
        as structured_product_count,
    avg(m.confidence) as mean_confidence
from mentions as m
inner join display as d
    on m.attribute_type = d.attribute_type
   and m.value_key = d.value_key
group by m.attribute_type, m.value_key, d.display_value, d.raw_values
