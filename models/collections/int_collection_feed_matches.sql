-- Feed candidates by attribute overlap, distributed on Spark without a products x collections cross
-- join. Every feed product carries the collection's anchor attribute (its first type: the article
-- type, style or category), so each product is joined to the collections anchored on one of its
-- attributes (collections are small: a broadcast join), and each such pair looks the collection's
-- other attributes up in the product's score map. The work grows with the pairs that share an
-- anchor, not with products x collections.
-- Products carrying every attribute match `full`; products carrying all but one (always including
-- the anchor) match `partial`.
-- A collection has 1-3 attributes (one per type of its pairing: seed collection_type_pairings), so
-- they are looked up as three columns with plain expressions Spark compiles, not with lambdas over
-- the attribute array (interpreted per row: twice the time at 5M pairs).
-- Rows stay narrow (ids, counts, score): duplicate detection and variant grouping read every match,
-- but a feed keeps at most max_feed_size cards, so the evidence (which attributes, with scores) is
-- built only for those, in int_collection_feeds.

with collections as (

    select
        collection_id,
        n_attributes,
        anchor_attribute_id,
        get(attributes, 0).attribute_id as attribute_id_1,
        get(attributes, 1).attribute_id as attribute_id_2,
        get(attributes, 2).attribute_id as attribute_id_3
    from {{ ref('int_collection_titles') }}
    where held_back_reason is null
      -- fails the model (rather than matching on three of four attributes) if pairings ever grow
      and assert_true(n_attributes between 1 and 3, 'a collection has 1-3 attributes') is null

),

product_scores as (

    {{ product_score_maps() }}

),

product_anchors as (

    select product_id, scores, explode(map_keys(scores)) as attribute_id
    from product_scores

),

anchored_pairs as (

    select /*+ BROADCAST(c) */
        c.collection_id,
        c.n_attributes,
        p.product_id,
        p.scores[c.attribute_id_1] as score_1,
        case when c.attribute_id_2 is not null then p.scores[c.attribute_id_2] end as score_2,
        case when c.attribute_id_3 is not null then p.scores[c.attribute_id_3] end as score_3
    from product_anchors as p
    inner join collections as c
        on p.attribute_id = c.anchor_attribute_id

),

counted as (

    select
        *,
        cast(score_1 is not null as int) + cast(score_2 is not null as int) + cast(score_3 is not null as int)
            as matched_attributes
    from anchored_pairs

)

select
    collection_id,
    product_id,
    case when matched_attributes = n_attributes then 'full' else 'partial' end as match_type,
    matched_attributes,
    n_attributes,
    (cast(0 as double) + coalesce(score_1, 0) + coalesce(score_2, 0) + coalesce(score_3, 0))
        / matched_attributes as mean_score
from counted
where matched_attributes = n_attributes
   or (n_attributes >= 2 and matched_attributes = n_attributes - 1)
