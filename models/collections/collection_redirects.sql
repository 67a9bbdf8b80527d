-- Old URL -> best surviving URL, for every URL ever published that is not a current canonical URL.
-- Targets are current canonical URLs only, so redirects never chain.

with history_urls as (

    select url_path, max_by(collection_id, seen_at) as collection_id, max_by(attribute_ids, seen_at) as attribute_ids
    from {{ ref('collection_history') }}
    group by url_path

),

collections as (

    select * from {{ ref('collections') }}

),

published as (

    select collection_id, url_path, attribute_ids, product_count
    from collections
    where status = 'published'

),

stale as (

    select h.*
    from history_urls as h
    where h.url_path not in (select url_path from published)

),

-- the collection is still valid: its canonical page (merged) or its new URL (renamed)
surviving as (

    select
        s.url_path as from_url_path,
        c.canonical_url_path as to_url_path,
        s.collection_id as from_collection_id,
        c.canonical_collection_id as to_collection_id,
        case when c.status = 'duplicate' then 'merged' else 'renamed' end as reason
    from stale as s
    inner join collections as c
        on s.collection_id = c.collection_id
       and c.status <> 'held_back'

),

-- gone (or held back): the published collection sharing most attributes, then the largest
removed as (

    select
        s.url_path as from_url_path,
        s.collection_id as from_collection_id,
        max_by(named_struct('url_path', p.url_path, 'collection_id', p.collection_id),
               named_struct('shared', size(array_intersect(s.attribute_ids, p.attribute_ids)),
                            'products', p.product_count, 'id', p.collection_id)) as target
    from stale as s
    left join published as p
        on arrays_overlap(s.attribute_ids, p.attribute_ids)
    where s.url_path not in (select from_url_path from surviving)
    group by s.url_path, s.collection_id

)

select from_url_path, to_url_path, from_collection_id, to_collection_id, reason
from surviving
union all
select
    from_url_path,
    coalesce(target.url_path, '/') as to_url_path,
    from_collection_id,
    target.collection_id as to_collection_id,
    'removed' as reason
from removed
