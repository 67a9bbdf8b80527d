-- The collections mart: every candidate collection with its status (published / duplicate /
-- held_back and why), title, URL, canonical collection and content timestamps from history.

with history as (

    select * from {{ ref('collection_history') }}

),

first_seen as (

    select collection_id, min(seen_at) as first_published_at
    from history
    group by collection_id

),

content_seen as (

    select collection_id, content_hash, max(seen_at) as content_changed_at
    from history
    group by collection_id, content_hash

)

select
    c.*,
    s.content_changed_at,
    f.first_published_at
from {{ ref('int_collections') }} as c
left join first_seen as f
    on c.collection_id = f.collection_id
left join content_seen as s
    on c.collection_id = s.collection_id
   and c.content_hash = s.content_hash
