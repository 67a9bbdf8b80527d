-- Every candidate with its final status, URL and content hash (timestamps come from history in the
-- `collections` mart). status: published | duplicate | held_back.

with titles as (

    select * from {{ ref('int_collection_titles') }}

),

duplicates as (

    select * from {{ ref('int_collection_duplicates') }}

),

feeds as (

    select
        f.collection_id,
        count(*) as feed_size,
        -- the page's content: every product in order, with its own content hash (text, price, photo)
        sha2(array_join(transform(
            array_sort(collect_list(named_struct('position', f.position, 'product_id', f.product_id,
                                                 'content_hash', p.content_hash))),
            x -> x.product_id || ':' || x.content_hash), ','), 256) as feed_hash
    from {{ ref('int_collection_feeds') }} as f
    inner join {{ ref('int_products') }} as p
        on f.product_id = p.product_id
    group by f.collection_id

),

resolved as (

    select
        t.*,
        case
            when t.held_back_reason is not null then 'held_back'
            when d.canonical_collection_id <> t.collection_id then 'duplicate'
            else 'published'
        end as status,
        case when t.held_back_reason is null then d.canonical_collection_id end as canonical_collection_id,
        d.jaccard_with_canonical,
        f.feed_size,
        f.feed_hash,
        case when t.held_back_reason is null then
            -- slug from the title; the id suffix keeps the URL unique and stable
            '/c/' || trim(BOTH '-' FROM regexp_replace(lower(regexp_replace(t.title, '[\'’]', '')), '[^a-z0-9]+', '-'))
            || '-' || substr(t.collection_id, 5) || '/'
        end as url_path
    from titles as t
    left join duplicates as d
        on t.collection_id = d.collection_id
    left join feeds as f
        on t.collection_id = f.collection_id

)

select
    r.collection_id,
    transform(r.attributes, x -> x.attribute_id) as attribute_ids,
    transform(r.attributes, x -> x.attribute_type) as attribute_types,
    transform(r.attributes, x -> x.value) as attribute_values,
    r.attribute_key,
    r.n_attributes,
    r.pairing_id,
    r.anchor_attribute_type,
    r.product_count,
    r.mean_score,
    r.title,
    r.llm_title,
    r.title_resolution,
    r.title_resolution_detail,
    r.quality_score,
    r.judge as quality_judge,
    r.title_model,
    r.prompt_version,
    regexp_extract(r.url_path, '^/c/(.*)/$', 1) as slug,
    r.url_path,
    r.status,
    r.held_back_reason,
    r.held_back_detail,
    r.canonical_collection_id,
    c.url_path as canonical_url_path,
    r.jaccard_with_canonical,
    r.feed_size,
    case when r.status <> 'held_back' then
        sha2(concat_ws('|', r.title, c.url_path, r.feed_hash), 256)
    end as content_hash
from resolved as r
left join resolved as c
    on r.canonical_collection_id = c.collection_id
