-- Feed candidates by attribute overlap, distributed on Spark: explode each collection into its
-- attributes, join the assigned product-attribute table on attribute_id, and aggregate per
-- (collection, product). Products carrying every attribute match `full`; products carrying all but
-- one (always including the anchor, e.g. the article type) match `partial`.

with collections as (

    select collection_id, n_attributes, anchor_attribute_id, attributes
    from {{ ref('int_collection_titles') }}
    where held_back_reason is null

),

collection_attributes as (

    select c.collection_id, c.n_attributes, c.anchor_attribute_id, a.attribute_id
    from collections as c
    lateral view explode(c.attributes) e as a

),

matches as (

    select
        ca.collection_id,
        ca.n_attributes,
        pa.product_id,
        count(*) as matched_attributes,
        bool_or(pa.attribute_id = ca.anchor_attribute_id) as has_anchor,
        avg(pa.score) as mean_score,
        array_sort(collect_list(named_struct(
            'attribute_type', pa.attribute_type, 'attribute_id', pa.attribute_id,
            'value', pa.value, 'score', pa.score))) as evidence
    from collection_attributes as ca
    inner join {{ ref('product_attributes_assigned') }} as pa
        on ca.attribute_id = pa.attribute_id
    group by ca.collection_id, ca.n_attributes, pa.product_id

)

select
    collection_id,
    product_id,
    case when matched_attributes = n_attributes then 'full' else 'partial' end as match_type,
    matched_attributes,
    n_attributes,
    mean_score,
    evidence
from matches
where matched_attributes = n_attributes
   or (n_attributes >= 2 and matched_attributes = n_attributes - 1 and has_anchor)
