-- Feed candidates by attribute overlap, distributed on Spark without a products x collections cross
-- join. Every feed product carries the collection's anchor attribute (its first type: the article
-- type, style or category), so collections are joined to products on the anchor alone; each such
-- pair then looks up the collection's other attributes in the product's score map. Both joins have
-- a small side Spark broadcasts (collections; one score map per product), so the work grows with
-- the pairs that share an anchor, not with products x collections.
-- Products carrying every attribute match `full`; products carrying all but one (always including
-- the anchor) match `partial`.

with collections as (

    select collection_id, n_attributes, anchor_attribute_id, attributes
    from {{ ref('int_collection_titles') }}
    where held_back_reason is null

),

assigned as (

    select product_id, attribute_id, score
    from {{ ref('product_attributes_assigned') }}

),

product_scores as (

    select product_id, map_from_entries(collect_list(struct(attribute_id, score))) as scores
    from assigned
    group by product_id

),

anchored_pairs as (

    select c.collection_id, c.n_attributes, c.attributes, a.product_id
    from collections as c
    inner join assigned as a
        on a.attribute_id = c.anchor_attribute_id

),

matched as (

    select
        p.collection_id,
        p.n_attributes,
        p.product_id,
        -- why the product is here: each of the collection's attributes it carries, with its score
        filter(transform(p.attributes, x -> named_struct(
            'attribute_type', x.attribute_type, 'attribute_id', x.attribute_id, 'value', x.value,
            'score', s.scores[x.attribute_id])), e -> e.score is not null) as evidence
    from anchored_pairs as p
    inner join product_scores as s
        on p.product_id = s.product_id

)

select
    collection_id,
    product_id,
    case when size(evidence) = n_attributes then 'full' else 'partial' end as match_type,
    size(evidence) as matched_attributes,
    n_attributes,
    aggregate(evidence, cast(0 as double), (total, e) -> total + e.score) / size(evidence) as mean_score,
    evidence
from matched
where size(evidence) = n_attributes
   or (n_attributes >= 2 and size(evidence) = n_attributes - 1)
