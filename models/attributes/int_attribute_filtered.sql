-- Every vocabulary candidate with the frequency filter and blocklist applied: drop_reason says why
-- a candidate stops here (null = it goes on to semantic dedup). The one place the rule lives:
-- attribute_long_tail lists the dropped rows, int_attribute_merges reads the kept ones.

select
    c.*,
    case
        when b.term is not null then 'blocklisted: ' || b.reason
        when c.product_count < {{ var('min_attribute_products') }}
            then 'below min_attribute_products ({{ var("min_attribute_products") }})'
    end as drop_reason
from {{ ref('int_attribute_candidates') }} as c
left join {{ ref('int_attribute_blocklist_hits') }} as b
    on c.attribute_type = b.attribute_type
   and c.value_key = b.value_key
