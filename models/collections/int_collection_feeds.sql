-- Ranked feeds: full matches by mean score, then partial matches (at most var feed_partial_share
-- of the feed), capped at var max_feed_size.

{%- set share = var('feed_partial_share') %}

with matches as (

    select
        *,
        row_number() over (partition by collection_id, match_type order by mean_score desc, product_id) as type_rank,
        count_if(match_type = 'full') over (partition by collection_id) as full_count
    from {{ ref('int_collection_feed_matches') }}

),

kept as (

    select *
    from matches
    where (match_type = 'full' and type_rank <= {{ var('max_feed_size') }})
       or (match_type = 'partial'
           and type_rank <= floor(least(full_count, {{ var('max_feed_size') }}) * {{ share }} / (1 - {{ share }}))
           and least(full_count, {{ var('max_feed_size') }}) + type_rank <= {{ var('max_feed_size') }})

)

select
    collection_id,
    row_number() over (
        partition by collection_id
        order by case match_type when 'full' then 0 else 1 end, mean_score desc, product_id) as position,
    product_id,
    match_type,
    matched_attributes,
    mean_score,
    evidence
from kept
