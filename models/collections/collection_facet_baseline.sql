-- The facet-only baseline for coverage: collections a merchant gets from its own gender x article
-- type x colour facets with the same var min_products. `is_full_facet` marks the gender x article
-- type x colour pages (the baseline coverage is compared with); the other rows are the coarser pages
-- (every non-empty subset of the three facets) that faceted navigation also offers.

select
    gender,
    article_type,
    base_colour,
    (case when gender is not null then 1 else 0 end + case when article_type is not null then 1 else 0 end
     + case when base_colour is not null then 1 else 0 end) as n_facets,
    (gender is not null and article_type is not null and base_colour is not null) as is_full_facet,
    count(*) as product_count
from {{ ref('int_products') }}
group by grouping sets (
    (gender), (article_type), (base_colour),
    (gender, article_type), (gender, base_colour), (article_type, base_colour),
    (gender, article_type, base_colour)
)
having count(*) >= {{ var('min_products') }}
   and (gender is not null or article_type is not null or base_colour is not null)
