-- Every candidate with its title outcome: the latest final attempt for its attribute set
-- (collection_title_attempts), then the checks that need all collections at once. held_back_reason
-- is null for collections that go on to feeds; otherwise it says why they stop here.

with candidates as (

    select * from {{ ref('int_collection_candidates') }}

),

attempts as (

    select * from {{ ref('collection_title_attempts') }}

),

final_titles as (

    select *
    from (
        select *, row_number() over (
            partition by collection_id, attribute_key order by created_at desc, attempt desc) as recency
        from attempts
        where final
    )
    where recency = 1

),

last_errors as (

    select collection_id, attribute_key, max_by(reasons, created_at) as error
    from attempts
    where status = 'error'
    group by collection_id, attribute_key

),

titled as (

    select
        c.*,
        t.title,
        t.quality_score,
        t.judge,
        t.model as title_model,
        t.prompt_version,
        t.status as title_status,
        t.reasons as title_reasons,
        e.error as title_error
    from candidates as c
    left join final_titles as t
        on c.collection_id = t.collection_id
       and c.attribute_key = t.attribute_key
    left join last_errors as e
        on c.collection_id = e.collection_id
       and c.attribute_key = e.attribute_key

),

-- two collections may not share a title: the broader one (fewer attributes, then more products) keeps it
ranked as (

    select
        *,
        case when title_status = 'accepted' then first_value(collection_id) over (
            partition by title_status, lower(regexp_replace(title, '[^A-Za-z0-9]', ''))
            order by n_attributes, product_count desc, collection_id) end as title_owner
    from titled

)

select
    collection_id,
    attribute_ids,
    attributes,
    attribute_key,
    n_attributes,
    pairing_id,
    anchor_attribute_id,
    product_count,
    mean_score,
    case when title_status in ('accepted', 'rejected') then title end as title,
    quality_score,
    judge,
    title_model,
    prompt_version,
    case
        when contradiction_reason is not null then 'contradiction'
        when title_status is null and title_error is not null then 'title_error'
        when title_status is null then 'title_pending'
        when title_status = 'rejected' and title_reasons like 'quality %' then 'low_quality_title'
        when title_status = 'rejected' then 'title_failed_validation'
        when title_owner <> collection_id then 'duplicate_title'
    end as held_back_reason,
    case
        when contradiction_reason is not null then contradiction_reason
        when title_status is null and title_error is not null then title_error
        when title_status is null then 'no title yet (llm_backend none, or not written yet)'
        when title_status = 'rejected' then title_reasons
        when title_owner <> collection_id then 'same title as ' || title_owner
    end as held_back_detail
from ranked
