-- One row per valid product: the feed line that passed every check and won over duplicates.

select
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
    catalog_dir,
    content_hash,
    line_number as source_line_number,
    batch_id,
    loaded_at
from {{ ref('stg_catalog__product_lines') }}
where reject_reason is null
