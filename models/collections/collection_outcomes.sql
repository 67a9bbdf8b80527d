-- What happened to the candidate collections, per attribute type and per arity: how many were
-- published, collapsed onto a near-duplicate, or held back, and why. One row per (breakdown,
-- breakdown_value, status, reason); shares are of that breakdown value's candidates.
--   breakdown n_attributes     1, 2 or 3 attributes
--   breakdown anchor_type      the collection's anchor type (its pairing's first type)
--   breakdown attribute_type   every type a collection uses (a collection counts once per type)
-- reason: published | disambiguated_title (published under a title that names what it adds to a
-- broader collection's) | near_duplicate_feed (status duplicate) | the held_back_reason.

with outcomes as (

    select
        collection_id,
        n_attributes,
        anchor_attribute_type,
        attribute_types,
        status,
        case
            when status = 'published' and title_resolution = 'disambiguated' then 'disambiguated_title'
            when status = 'published' then 'published'
            when status = 'duplicate' then 'near_duplicate_feed'
            else held_back_reason
        end as reason
    from {{ ref('collections') }}

),

breakdowns as (

    select 'n_attributes' as breakdown, cast(n_attributes as string) as breakdown_value, status, reason, collection_id
    from outcomes
    union all
    select 'anchor_type', coalesce(anchor_attribute_type, 'unknown'), status, reason, collection_id
    from outcomes
    union all
    select 'attribute_type', t.attribute_type, status, reason, collection_id
    from outcomes
    lateral view explode(attribute_types) t as attribute_type

)

select
    breakdown,
    breakdown_value,
    status,
    reason,
    count(*) as collections,
    count(*) / sum(count(*)) over (partition by breakdown, breakdown_value) as share_of_candidates
from breakdowns
group by breakdown, breakdown_value, status, reason
