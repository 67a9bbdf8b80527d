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

-- Two collections may not share a title. The broader one (fewer attributes, then more products) keeps
-- the plain title; a narrower one is renamed: the title is followed by the values of its attributes
-- the broader collection lacks, in attribute type order, e.g. "Men's T-Shirts (Blue)" (a value the
-- title already spells is named with its type: "T-Shirts (Style: T-shirt)"). The renamed collection
-- then competes on feed overlap like any other (int_collection_duplicates). It is held back as
-- duplicate_title only when the new title is longer than var title_max_chars or still clashes.
{%- set norm = "lower(regexp_replace({}, '[^A-Za-z0-9]', ''))" %}

shared as (

    select
        *,
        case when eligible then first_value(collection_id) over (
            partition by eligible, {{ norm.format('title') }}
            order by n_attributes, product_count desc, collection_id) end as title_owner,
        case when eligible then count(*) over (
            partition by eligible, {{ norm.format('title') }}) end as title_sharers
    from (
        -- titles that compete for a URL: accepted, and not held back as a contradiction anyway
        select *, title_status = 'accepted' and contradiction_reason is null as eligible from titled
    )

),

named as (

    select
        s.*,
        o.title as owner_title,
        case when s.title_owner <> s.collection_id then
            filter(s.attributes, x -> not array_contains(o.attribute_ids, x.attribute_id))
        end as distinguishing
    from shared as s
    left join titled as o
        on s.title_owner = o.collection_id

),

renamed as (

    select
        *,
        case when size(distinguishing) > 0 then
            title || ' (' || array_join(transform(distinguishing, x ->
                case when instr({{ norm.format('title') }}, {{ norm.format('x.value') }}) > 0
                     then initcap(replace(x.attribute_type, '_', ' ')) || ': ' || x.value
                     else x.value end), ', ') || ')'
        end as disambiguated_title
    from named

),

-- the final titles must be unique too: a plain title beats a renamed one, then the broader collection
ranked as (

    select
        *,
        case when eligible then first_value(collection_id) over (
            partition by eligible, {{ norm.format('coalesce(disambiguated_title, title)') }}
            order by case when disambiguated_title is null then 0 else 1 end,
                     n_attributes, product_count desc, collection_id) end as final_title_owner
    from renamed

),

resolved as (

    select
        *,
        case
            when not eligible then null
            when title_owner = collection_id and final_title_owner = collection_id and title_sharers > 1
                then 'kept_shared_title'
            when title_owner = collection_id and final_title_owner = collection_id then 'unique'
            when disambiguated_title is not null and final_title_owner = collection_id
                 and length(disambiguated_title) <= {{ var('title_max_chars') }} then 'disambiguated'
            else 'duplicate_title'
        end as title_resolution
    from ranked

),

explained as (

    select
        *,
        case
            when title_resolution = 'kept_shared_title'
                then 'broadest of ' || cast(title_sharers as string) || ' collections titled "' || title
                     || '": keeps the plain title'
            when title_resolution = 'disambiguated'
                then 'same title as broader ' || title_owner || '; named what it lacks: '
                     || array_join(transform(distinguishing, x -> x.attribute_type || '=' || x.value), ', ')
            when title_resolution = 'duplicate_title' and disambiguated_title is null
                then 'same title as ' || title_owner
            when title_resolution = 'duplicate_title' and length(disambiguated_title) > {{ var('title_max_chars') }}
                then 'same title as ' || title_owner || '; "' || disambiguated_title || '" is longer than '
                     || '{{ var('title_max_chars') }} characters'
            when title_resolution = 'duplicate_title'
                then 'same title as ' || title_owner || '; "' || disambiguated_title || '" is taken by '
                     || final_title_owner
        end as title_resolution_detail
    from resolved

)

select
    collection_id,
    attribute_ids,
    attributes,
    attribute_key,
    n_attributes,
    pairing_id,
    anchor_attribute_id,
    filter(attributes, x -> x.attribute_id = anchor_attribute_id)[0].attribute_type as anchor_attribute_type,
    product_count,
    mean_score,
    case
        when title_resolution = 'disambiguated' then disambiguated_title
        when title_status in ('accepted', 'rejected') then title
    end as title,
    case when title_status in ('accepted', 'rejected') then title end as llm_title,
    title_resolution,
    title_resolution_detail,
    quality_score,
    judge,
    title_model,
    prompt_version,
    case
        when contradiction_reason is not null then 'contradiction'
        when title_status is null and title_error is not null then 'title_error'
        when title_status is null then 'title_pending'
        -- a quality score exists only for a title that passed validation (ml/titles.py TitleWriter.write),
        -- so a rejected title with a score was rejected for its quality: no message text is parsed
        when title_status = 'rejected' and quality_score is not null then 'low_quality_title'
        when title_status = 'rejected' then 'title_failed_validation'
        when title_resolution = 'duplicate_title' then 'duplicate_title'
    end as held_back_reason,
    case
        when contradiction_reason is not null then contradiction_reason
        when title_status is null and title_error is not null then title_error
        when title_status is null then 'no title yet (llm_backend none, or not written yet)'
        when title_status = 'rejected' then title_reasons
        when title_resolution = 'duplicate_title' then title_resolution_detail
    end as held_back_detail
from explained
