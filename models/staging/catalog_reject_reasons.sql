-- Rejections by stage and reason, for dashboards and alerting.

select 'product' as stage, reject_reason, count(*) as rows_rejected
from {{ ref('quarantine_products') }}
group by reject_reason

union all

select 'image' as stage, reject_reason, count(*) as rows_rejected
from {{ ref('quarantine_product_images') }}
group by reject_reason
