-- One row per feed load: how every line of the feed was accounted for, and how the photos fared.
-- lines_landed is what ingest counted in the feed file itself (raw_feed_loads), not a count of the
-- staging model, so the every_line_accounted_for test fails when a line goes missing anywhere
-- between the file and stg_products / quarantine_products.

with batches as (

    select batch_id, max(loaded_at) as loaded_at
    from {{ ref('stg_catalog__product_lines') }}
    group by batch_id

),

loads as (

    select batch_id, lines_read - blank_lines as lines_in_feed
    from {{ source('catalog', 'raw_feed_loads') }}

),

staged as (

    select batch_id, count(*) as products_staged
    from {{ ref('stg_products') }}
    group by batch_id

),

quarantined as (

    select batch_id, count(*) as lines_quarantined
    from {{ ref('quarantine_products') }}
    group by batch_id

),

lines as (

    select
        batches.batch_id,
        batches.loaded_at,
        loads.lines_in_feed as lines_landed,
        coalesce(staged.products_staged, 0) as products_staged,
        coalesce(quarantined.lines_quarantined, 0) as lines_quarantined
    from batches
    left join loads on loads.batch_id = batches.batch_id
    left join staged on staged.batch_id = batches.batch_id
    left join quarantined on quarantined.batch_id = batches.batch_id

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
