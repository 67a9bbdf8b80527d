-- The products of every valid collection in page order, with the evidence for each (matched
-- attributes and scores) and what a page shows about the product. One row per card: near-identical
-- products are collapsed onto the best-ranked one, the others listed in variant_product_ids
-- (int_collection_feed_variants); the first page is brand-diversified (int_collection_feeds).

select
    f.collection_id,
    f.position,
    f.product_id,
    f.match_type,
    f.matched_attributes,
    f.mean_score,
    f.evidence,
    p.title as product_title,
    p.brand,
    p.price,
    p.image_path,
    p.image_sha256,
    p.image_width,
    p.image_height,
    f.variant_product_ids,
    f.variant_count,
    f.relevance_position,
    {{ model_split('f.product_id') }} as model_split
from {{ ref('int_collection_feeds') }} as f
inner join {{ ref('int_products') }} as p
    on f.product_id = p.product_id
