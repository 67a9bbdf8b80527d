-- Every (URL, content, status) a valid collection has had, one row per change, appended by each
-- build: where first_published_at and content_changed_at (sitemap lastmod) come from, and what
-- collection_redirects maps old URLs from. full_refresh is off: history must survive rebuilds.

{{ config(materialized='incremental', incremental_strategy='append', full_refresh=false) }}

with current_state as (

    select
        collection_id,
        url_path,
        content_hash,
        status,
        canonical_collection_id,
        attribute_ids,
        title,
        product_count,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as seen_at
    from {{ ref('int_collections') }}
    where status <> 'held_back'

)

select s.*
from current_state as s
{% if is_incremental() %}
left join (
    select collection_id, max_by(named_struct('url_path', url_path, 'content_hash', content_hash, 'status', status),
                                 seen_at) as latest
    from {{ this }}
    group by collection_id
) as h
    on s.collection_id = h.collection_id
where h.collection_id is null
   or h.latest.url_path <> s.url_path
   or h.latest.content_hash <> s.content_hash
   or h.latest.status <> s.status
{% endif %}
