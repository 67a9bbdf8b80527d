-- The catalog downstream stages use: every staged product, with its photo only when the photo
-- passed every check. A product whose photo was rejected stays, as a text-only product.

select
    p.product_id,
    p.title,
    p.brand,
    p.gender,
    p.master_category,
    p.sub_category,
    p.article_type,
    p.base_colour,
    p.season,
    p.year,
    p.usage,
    p.price,
    p.description,
    p.merchant_attributes,
    case
        when p.image_ref is null then 'none'
        else i.image_status
    end as image_status,
    i.reject_reason as image_reject_reason,
    case when i.image_status = 'valid' then i.image_path end as image_path,
    case when i.image_status = 'valid' then i.sha256 end as image_sha256,
    case when i.image_status = 'valid' then i.width end as image_width,
    case when i.image_status = 'valid' then i.height end as image_height,
    -- Changes when the product's text or its photo bytes change: key for downstream caches.
    sha2(concat_ws('|', p.content_hash, coalesce(case when i.image_status = 'valid' then i.sha256 end, '')), 256)
        as content_hash,
    p.loaded_at
from {{ ref('stg_products') }} as p
left join {{ ref('stg_product_images') }} as i
    on p.product_id = i.product_id
