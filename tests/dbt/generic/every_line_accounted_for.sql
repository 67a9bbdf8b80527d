{#- Every landed line is either staged or quarantined, never both, never neither. -#}
{% test every_line_accounted_for(model) %}
select *
from {{ model }}
where lines_landed != products_staged + lines_quarantined
{% endtest %}
