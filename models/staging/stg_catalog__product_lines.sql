-- Every landed feed line, typed and normalised, with the one reason it cannot be staged (if any).
-- stg_products keeps the rows without a reason; quarantine_products keeps the rest.

{# Hostile text: control characters (NUL, ...), bidi overrides/isolates and Unicode tag characters
    are removed, whitespace of every script collapses to one space, and invisible characters
    (zero-width, BOM, fillers) are trimmed from both ends, so a title of only spaces, tabs, NBSPs or
    zero-width characters is empty. btrim with a character list, not an anchored regex: linear on
    long hostile runs. #}
{%- set control_chars = "'[\\\\p{Cc}&&[^\\\\t\\\\n\\\\x0B\\\\f\\\\r]]|[\\\\x{202A}-\\\\x{202E}\\\\x{2066}-\\\\x{2069}\\\\x{E0000}-\\\\x{E007F}]'" -%}
{%- set invisible_chars = "' \\u00ad\\u034f\\u061c\\u115f\\u1160\\u180e\\u200b\\u200c\\u200d\\u200e\\u200f\\u2060\\u2061\\u2062\\u2063\\u2064\\u206a\\u206b\\u206c\\u206d\\u206e\\u206f\\u2800\\u3164\\ufeff\\uffa0'" -%}
{%- set any_space = "'[\\\\s\\\\p{Z}]+'" -%}
{%- set blank_chars = "' \\t\\n\\r\\u000b\\u000c\\u00a0\\u1680\\u2000\\u2001\\u2002\\u2003\\u2004\\u2005\\u2006\\u2007\\u2008\\u2009\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000" ~ invisible_chars[2:] %}

with raw as (

    select * from {{ source('catalog', 'raw_products') }}

),

typed as (

    select
        _line_number                                   as line_number,
        _batch_id                                      as batch_id,
        _loaded_at                                     as loaded_at,
        _catalog_dir                                   as catalog_dir,
        _load_error                                    as load_error,
        _load_error_detail                             as load_error_detail,
        _raw_line                                      as raw_line,
        nullif(btrim(product_id, {{ blank_chars }}), '') as product_id,
        {%- for column in ['title', 'brand', 'description'] %}
        nullif(btrim(regexp_replace(regexp_replace({{ column }}, {{ control_chars }}, ''), {{ any_space }}, ' '),
                     {{ invisible_chars }}), '') as {{ column }},
        {%- endfor %}
        {{ clean_optional_text('gender') }}            as gender,
        {{ clean_optional_text('master_category') }}   as master_category,
        {{ clean_optional_text('sub_category') }}      as sub_category,
        {{ clean_optional_text('article_type') }}      as article_type,
        {{ clean_optional_text('base_colour') }}       as base_colour,
        {{ clean_optional_text('season') }}            as season,
        try_cast(year as int)                          as year,
        {{ clean_optional_text('usage') }}             as usage,
        price                                          as price_raw,
        try_cast(price as decimal(14, 2))              as price,
        merchant_attributes                            as merchant_attributes_raw,
        from_json(merchant_attributes, 'map<string,string>') as merchant_attributes_map,
        -- from_json turns numbers and objects into strings: check the JSON types themselves
        not coalesce(forall(map_values(try_cast(try_parse_json(merchant_attributes) as map<string, variant>)),
                            v -> schema_of_variant(v) in ('STRING', 'VOID')), false) as merchant_attributes_not_strings,
        _type_errors                                   as type_errors,
        nullif(trim(image), '')                        as image_ref
    from raw

),

normalised as (

    select
        *,
        -- Placeholder values ("NA", "") mean "not given": drop them; trim keys and values.
        map_filter(
            transform_values(
                transform_keys(merchant_attributes_map, (k, v) -> {{ clean_text('k') }}),
                (k, v) -> {{ clean_optional_text('v') }}
            ),
            (k, v) -> k is not null and v is not null
        ) as merchant_attributes
    from typed

),

row_checks as (

    select
        *,
        case
            when load_error is not null then load_error
            when product_id is null then 'missing_product_id'
            when type_errors is not null then 'invalid_field_type'
            when length(product_id) > {{ var('max_product_id_chars') }}
              or length(title) > {{ var('max_title_chars') }}
              or length(brand) > {{ var('max_brand_chars') }}
              or length(description) > {{ var('max_description_chars') }}
              or size(merchant_attributes_map) > {{ var('max_merchant_attributes') }}
              or exists(map_values(merchant_attributes_map), v -> length(v) > {{ var('max_merchant_attribute_chars') }})
                then 'field_too_large'
            when title is null then 'empty_title'
            when merchant_attributes_raw is not null
              and (merchant_attributes_map is null or merchant_attributes_not_strings)
                then 'invalid_merchant_attributes'
            when price_raw is not null and price is null then 'invalid_price'
            when price < 0 then 'negative_price'
            when price > {{ var('max_price') }} then 'absurd_price'
        end as row_reject_reason,
        case
            when load_error is not null then load_error_detail
            when product_id is null then 'product_id is missing or blank'
            when type_errors is not null then concat('not a JSON string: ', type_errors)
            when length(product_id) > {{ var('max_product_id_chars') }}
                then concat('product_id: ', length(product_id), ' chars > {{ var("max_product_id_chars") }}')
            when length(title) > {{ var('max_title_chars') }}
                then concat('title: ', length(title), ' chars > {{ var("max_title_chars") }}')
            when length(brand) > {{ var('max_brand_chars') }}
                then concat('brand: ', length(brand), ' chars > {{ var("max_brand_chars") }}')
            when length(description) > {{ var('max_description_chars') }}
                then concat('description: ', length(description), ' chars > {{ var("max_description_chars") }}')
            when size(merchant_attributes_map) > {{ var('max_merchant_attributes') }}
                then concat('merchant_attributes: ', size(merchant_attributes_map), ' keys > {{ var("max_merchant_attributes") }}')
            when exists(map_values(merchant_attributes_map), v -> length(v) > {{ var('max_merchant_attribute_chars') }})
                then 'merchant_attributes: a value exceeds {{ var("max_merchant_attribute_chars") }} chars'
            when title is null then 'title is missing or blank'
            when merchant_attributes_raw is not null
              and (merchant_attributes_map is null or merchant_attributes_not_strings)
                then concat('merchant_attributes is not an object of strings: ', left(merchant_attributes_raw, 100))
            when price_raw is not null and price is null then concat('price: ', left(price_raw, 100))
            when price < 0 or price > {{ var('max_price') }} then concat('price: ', cast(price as string))
        end as row_reject_detail,
        sha2(to_json(named_struct(
            'title', title, 'brand', brand, 'gender', gender, 'master_category', master_category,
            'sub_category', sub_category, 'article_type', article_type, 'base_colour', base_colour,
            'season', season, 'year', year, 'usage', usage, 'price', cast(price as string),
            'description', description,
            'merchant_attributes', array_sort(map_entries(merchant_attributes)), 'image_ref', image_ref
        )), 256) as content_hash
    from normalised

),

-- A product id sent more than once: the last valid line in the feed wins (upsert order);
-- the others are quarantined as identical or conflicting copies.
duplicates as (

    select
        *,
        case when row_reject_reason is null then row_number() over (
            partition by product_id, row_reject_reason is null order by line_number desc
        ) end as version_rank,
        case when row_reject_reason is null then first_value(content_hash) over (
            partition by product_id, row_reject_reason is null order by line_number desc
        ) end as winner_content_hash,
        case when row_reject_reason is null then max(line_number) over (
            partition by product_id, row_reject_reason is null
        ) end as winner_line_number
    from row_checks

)

select
    line_number,
    batch_id,
    loaded_at,
    catalog_dir,
    raw_line,
    product_id,
    title,
    brand,
    gender,
    master_category,
    sub_category,
    article_type,
    base_colour,
    season,
    year,
    usage,
    price,
    description,
    merchant_attributes,
    image_ref,
    content_hash,
    case
        when row_reject_reason is not null then row_reject_reason
        when version_rank > 1 and content_hash = winner_content_hash then 'duplicate_id_identical'
        when version_rank > 1 then 'duplicate_id_conflicting'
    end as reject_reason,
    case
        when row_reject_reason is not null then row_reject_detail
        when version_rank > 1 then concat('product_id ', product_id, ' kept from line ', winner_line_number)
    end as reject_detail
from duplicates
