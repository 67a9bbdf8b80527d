-- Feed lines that could not be staged, one reason each. Nothing here reaches downstream models.

select
    line_number,
    product_id,
    reject_reason,
    reject_detail,
    raw_line,
    batch_id,
    loaded_at
from {{ ref('stg_catalog__product_lines') }}
where reject_reason is not null
