-- Candidates that did not enter the vocabulary before semantic dedup, with the reason.

select
    c.attribute_type,
    c.value_key,
    c.display_value,
    c.product_count,
    c.source_backends,
    case
        when b.term is not null then 'blocklisted: ' || b.reason
        when c.product_count < {{ var('min_attribute_products') }}
            then 'below min_attribute_products ({{ var("min_attribute_products") }})'
    end as drop_reason
from {{ ref('int_attribute_candidates') }} as c
left join {{ ref('int_attribute_blocklist_hits') }} as b
    on c.attribute_type = b.attribute_type
   and c.value_key = b.value_key
where b.term is not null
   or c.product_count < {{ var('min_attribute_products') }}
