-- Photos that failed a check. Their products stay in the catalog as text-only products.

select
    product_id,
    image_ref,
    reject_reason,
    reject_detail,
    file_bytes,
    sha256,
    checked_at
from {{ ref('stg_product_images') }}
where image_status = 'rejected'
