-- One row per feed load: how every landed line was accounted for, and how the photos fared.

with lines as (

    select
        batch_id,
        max(loaded_at) as loaded_at,
        count(*) as lines_landed,
        count_if(reject_reason is null) as products_staged,
        count_if(reject_reason is not null) as lines_quarantined
    from {{ ref('stg_catalog__product_lines') }}
    group by batch_id

),

products as (

    select
        count(*) as products,
        count_if(image_status != 'none') as images_referenced,
        count_if(image_status = 'valid') as images_valid,
        count_if(image_status = 'rejected') as images_rejected,
        count_if(image_status != 'valid') as text_only_products
    from {{ ref('int_products') }}

)

select
    lines.batch_id,
    lines.loaded_at,
    lines.lines_landed,
    lines.products_staged,
    lines.lines_quarantined,
    lines.lines_quarantined / nullif(lines.lines_landed, 0) as quarantine_rate,
    products.images_referenced,
    products.images_valid,
    products.images_rejected,
    products.images_valid / nullif(products.images_referenced, 0) as image_valid_rate,
    products.text_only_products
from lines
cross join products
