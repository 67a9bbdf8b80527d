-- Product <-> curated attribute: every active vocabulary attribute a product's extracted values
-- map to (through normalisation, synonyms and dedup merges).

select
    m.product_id,
    v.attribute_id,
    v.attribute_type,
    v.canonical_value as value,
    max(m.confidence) as confidence,
    array_sort(collect_set(m.source_backend)) as source_backends
from {{ ref('int_attribute_mentions') }} as m
inner join {{ ref('int_attribute_merges') }} as g
    on m.attribute_type = g.attribute_type
   and m.value_key = g.value_key
inner join {{ ref('attribute_vocabulary') }} as v
    on g.attribute_type = v.attribute_type
   and g.canonical_key = v.canonical_key
where v.status = 'active'
group by m.product_id, v.attribute_id, v.attribute_type, v.canonical_value
