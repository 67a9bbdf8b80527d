-- Attributes waiting for a reviewer. Add a row to seeds/attribute_review_decisions.csv
-- (approve / reject) and the next run honours it.

select
    v.attribute_id,
    v.attribute_type,
    v.canonical_value as value,
    v.aliases,
    v.product_frequency,
    v.source_backends,
    v.mean_confidence,
    v.status_reason as review_reason
from {{ ref('attribute_vocabulary') }} as v
where v.status = 'pending_review'
