-- Attributes assigned to products by the dual encoder: scores above the type's threshold
-- (var assignment_thresholds, `default` for unlisted types); single-valued types (one article
-- type, one base colour, ...) keep only their best-scoring value.

{%- set thresholds = var('assignment_thresholds') %}
{%- set per_type = thresholds.items() | rejectattr(0, 'equalto', 'default') | list %}

with scores as (

    select s.*, t.single_valued
    from {{ ref('product_attribute_scores') }} as s
    inner join {{ ref('attribute_types') }} as t
        on s.attribute_type = t.attribute_type

),

above_threshold as (

    select *
    from scores
    where score >=
        {%- if per_type %} case attribute_type
            {%- for type, threshold in per_type %}
            when '{{ type }}' then {{ threshold }}
            {%- endfor %}
            else {{ thresholds['default'] }}
        end
        {%- else %} {{ thresholds['default'] }}
        {%- endif %}

),

ranked as (

    select *, row_number() over (partition by product_id, attribute_type order by score desc, attribute_id) as type_rank
    from above_threshold

)

select product_id, attribute_id, attribute_type, value, score, model_version
from ranked
where not single_valued or type_rank = 1
