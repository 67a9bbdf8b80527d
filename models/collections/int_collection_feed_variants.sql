-- Near-identical products within each collection's matches, grouped into one card with variants.
-- Two matches of a collection are variants of one another when they share the photo's content hash
-- (stg_product_images sha256) or the same brand + normalised title (lower case, letters and digits
-- only). Groups are the connected components of those two links, found by label propagation over
-- the relevance rank (text key -> photo key -> text key: chains of up to three hops; longer chains
-- stay split, never wrongly merged). The card's leader is the group's best-ranked match (full
-- before partial, then mean score), so grouping never lowers a feed's top; the other members are
-- kept as variant_product_ids.
--
-- legacy_position is the product's position in the feed as it was before variants and diversity
-- (full by score, then partial fill, same caps): the "before" that collection_metrics and
-- collection_precision compare with.

{%- set share = var('feed_partial_share') %}
{%- set max_size = var('max_feed_size') %}

-- Every match passes through here (duplicate detection and the "before" metrics need them all), so
-- rows stay narrow: ids, keys, ranks. A card's evidence is built in int_collection_feeds, for the
-- cards a feed keeps.

with matches as (

    select
        m.collection_id,
        m.product_id,
        m.match_type,
        m.matched_attributes,
        m.n_attributes,
        m.mean_score,
        p.brand,
        coalesce('img:' || p.image_sha256, 'id:' || m.product_id) as photo_key,
        'txt:' || coalesce(lower(trim(p.brand)), '') || '|' || regexp_replace(lower(coalesce(p.title, '')), '[^a-z0-9]+', '')
            as text_key
    from {{ ref('int_collection_feed_matches') }} as m
    inner join {{ ref('int_products') }} as p
        on m.product_id = p.product_id

),

ranked as (

    select
        *,
        row_number() over (
            partition by collection_id
            order by case match_type when 'full' then 0 else 1 end, mean_score desc, product_id) as relevance_rank,
        row_number() over (partition by collection_id, match_type order by mean_score desc, product_id) as type_rank,
        count_if(match_type = 'full') over (partition by collection_id) as full_count
    from matches

),

hop_1 as (

    select *, min(relevance_rank) over (partition by collection_id, text_key) as label_1
    from ranked

),

hop_2 as (

    select *, min(label_1) over (partition by collection_id, photo_key) as label_2
    from hop_1

),

hop_3 as (

    select *, min(label_2) over (partition by collection_id, text_key) as variant_group
    from hop_2

),

grouped as (

    -- scalars per group as window aggregates: every member carries only its group's size and leader
    select
        *,
        cast(count(*) over (partition by collection_id, variant_group) as int) as variant_count,
        min(relevance_rank) over (partition by collection_id, variant_group) as leader_rank,
        min_by(product_id, relevance_rank) over (partition by collection_id, variant_group) as leader_id
    from hop_3

),

variant_lists as (

    -- the member list, built once per multi-member group and attached to its leader only: attaching
    -- it to every member made the output quadratic in group size (a 1M catalog filled the disk)
    select
        collection_id,
        variant_group,
        array_sort(collect_list(named_struct('rank', relevance_rank, 'product_id', product_id))) as members
    from hop_3
    group by collection_id, variant_group
    having count(*) > 1

)

select
    h.collection_id,
    h.product_id,
    h.match_type,
    h.matched_attributes,
    h.n_attributes,
    h.mean_score,
    h.brand,
    h.relevance_rank,
    h.type_rank,
    h.full_count,
    h.variant_group,
    h.relevance_rank = h.leader_rank as is_variant_leader,
    h.leader_id as variant_leader_id,
    h.variant_count,
    -- on the leader: every other member, best-ranked first; empty on the other members
    coalesce(transform(slice(l.members, 2, h.variant_count), x -> x.product_id), cast(array() as array<string>))
        as variant_product_ids,
    case
        when h.match_type = 'full' and h.type_rank <= {{ max_size }} then h.type_rank
        when h.match_type = 'partial'
         and h.type_rank <= floor(least(h.full_count, {{ max_size }}) * {{ share }} / (1 - {{ share }}))
         and least(h.full_count, {{ max_size }}) + h.type_rank <= {{ max_size }}
            then least(h.full_count, {{ max_size }}) + h.type_rank
    end as legacy_position
from grouped as h
left join variant_lists as l
    on h.collection_id = l.collection_id
   and h.variant_group = l.variant_group
   and h.relevance_rank = h.leader_rank
