{#- Each product's assigned attributes as a map attribute_id -> score (product_attributes_assigned),
    for looking a collection's attributes up per product. `products`: an optional SQL subquery of
    product_id values to restrict to (the feed builds maps for its kept cards only). -#}
{% macro product_score_maps(products=none) %}
    select product_id, map_from_entries(collect_list(struct(attribute_id, score))) as scores
    from {{ ref('product_attributes_assigned') }}
    {%- if products %}
    where product_id in ({{ products }})
    {%- endif %}
    group by product_id
{% endmacro %}
