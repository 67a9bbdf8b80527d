-- Candidates that did not enter the vocabulary before semantic dedup, with the reason
-- (the rule is int_attribute_filtered's).

select attribute_type, value_key, display_value, product_count, source_backends, drop_reason
from {{ ref('int_attribute_filtered') }}
where drop_reason is not null
