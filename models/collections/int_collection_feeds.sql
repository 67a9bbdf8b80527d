-- Ranked feeds of cards: one card per group of near-identical products (int_collection_feed_variants:
-- same photo, or same brand + title; the others ride along as variant_product_ids), full matches by
-- mean score, then partial matches (at most var feed_partial_share of the feed), capped at var
-- max_feed_size cards.
--
-- Diversity, MMR-style, without letting a worse match in: only the best var feed_diversity_pool
-- full-match cards (two pages by default) are reordered, by mean score minus var
-- feed_brand_penalty for every better card of the same brand already above it. A card from a new
-- brand can overtake a brand's n-th card only when it is within n x penalty of its score; partial
-- matches stay below every full match, and cards outside the pool keep their relevance order.
--
-- Each kept card's evidence (the collection's attributes it carries, in the collection's attribute
-- order, with their scores) is built here rather than for every match upstream: a feed keeps at
-- most max_feed_size cards of a collection's matches.
{%- set evidence = "named_struct('attribute_type', attribute_N.attribute_type, 'attribute_id', attribute_N.attribute_id,"
                   ~ " 'value', attribute_N.value, 'score', scores[attribute_N.attribute_id])" %}

{%- set share = var('feed_partial_share') %}
{%- set max_size = var('max_feed_size') %}
{%- set pool = var('feed_diversity_pool', 96) %}
{%- set penalty = var('feed_brand_penalty', 0.05) %}

with cards as (

    select
        *,
        row_number() over (partition by collection_id, match_type order by mean_score desc, product_id) as card_type_rank,
        count_if(match_type = 'full') over (partition by collection_id) as full_cards
    from {{ ref('int_collection_feed_variants') }}
    where is_variant_leader

),

kept as (

    select *
    from cards
    where (match_type = 'full' and card_type_rank <= {{ max_size }})
       or (match_type = 'partial'
           and card_type_rank <= floor(least(full_cards, {{ max_size }}) * {{ share }} / (1 - {{ share }}))
           and least(full_cards, {{ max_size }}) + card_type_rank <= {{ max_size }})

),

pooled as (

    select
        *,
        match_type = 'full' and card_type_rank <= {{ pool }} as in_diversity_pool,
        row_number() over (
            partition by collection_id
            order by case match_type when 'full' then 0 else 1 end, mean_score desc, product_id) as relevance_position
    from kept

),

diversified as (

    select
        *,
        -- how many better cards of the same brand the pool holds (0 for a brand's best card)
        case when in_diversity_pool then row_number() over (
            partition by collection_id, in_diversity_pool, coalesce(lower(trim(brand)), '')
            order by mean_score desc, product_id) - 1 end as brand_repeats
    from pooled

),

collection_attributes as (

    select
        collection_id,
        get(attributes, 0) as attribute_1,
        get(attributes, 1) as attribute_2,
        get(attributes, 2) as attribute_3
    from {{ ref('int_collection_titles') }}
    where held_back_reason is null

),

card_scores as (

    -- the score maps of kept cards' products only
    {{ product_score_maps('select product_id from kept') }}

),

with_evidence as (

    select /*+ BROADCAST(c) */
        d.*,
        array_compact(array(
            case when s.scores[c.attribute_1.attribute_id] is not null then {{ evidence.replace('_N', '_1') }} end,
            case when s.scores[c.attribute_2.attribute_id] is not null then {{ evidence.replace('_N', '_2') }} end,
            case when s.scores[c.attribute_3.attribute_id] is not null then {{ evidence.replace('_N', '_3') }} end))
            as evidence
    from diversified as d
    -- left joins: a card is never dropped here; the data test size(evidence) = matched_attributes
    -- fails the build if the evidence and the match ever disagree
    left join collection_attributes as c
        on d.collection_id = c.collection_id
    left join card_scores as s
        on d.product_id = s.product_id

)

select
    collection_id,
    row_number() over (
        partition by collection_id
        order by case when in_diversity_pool then 0 when match_type = 'full' then 1 else 2 end,
                 case when in_diversity_pool then mean_score - {{ penalty }} * brand_repeats end desc,
                 mean_score desc, product_id) as position,
    product_id,
    match_type,
    matched_attributes,
    mean_score,
    evidence,
    variant_product_ids,
    variant_count,
    cast(relevance_position as int) as relevance_position,
    cast(brand_repeats as int) as brand_repeats
from with_evidence
