-- Every extracted attribute, typed and normalised: value_key is the grouping key after
-- normalisation and the synonyms seed; raw_value keeps what the backend said.

with extracted as (

    select * from {{ ref('product_attributes_extracted') }}

),

synonyms as (

    select
        attribute_type,
        {{ normalize_attribute_value('alias') }} as alias_key,
        {{ normalize_attribute_value('canonical') }} as canonical_key
    from {{ ref('attribute_synonyms') }}

),

normalised as (

    select
        e.product_id,
        e.attribute_type,
        e.raw_value,
        {{ normalize_attribute_value('e.raw_value') }} as normalised_key,
        e.source_backend,
        e.confidence
    from extracted as e
    inner join {{ ref('attribute_types') }} as t
        on e.attribute_type = t.attribute_type

)

select
    n.product_id,
    n.attribute_type,
    n.raw_value,
    n.normalised_key,
    coalesce(s.canonical_key, n.normalised_key) as value_key,
    n.source_backend,
    n.confidence
from normalised as n
left join synonyms as s
    on n.attribute_type = s.attribute_type
   and n.normalised_key = s.alias_key
where n.normalised_key != ''
