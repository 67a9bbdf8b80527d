{#- Trim, collapse runs of whitespace to one space, and turn '' into null. -#}
{% macro clean_text(column) -%}
    nullif(regexp_replace(trim({{ column }}), '\\s+', ' '), '')
{%- endmacro %}

{#- clean_text, and also null for the placeholders merchants send for "no value" ("NA", "N/A", "null", "-"). -#}
{% macro clean_optional_text(column) -%}
    case
        when upper({{ clean_text(column) }}) in ('NA', 'N/A', 'NULL', 'NONE', '-') then null
        else {{ clean_text(column) }}
    end
{%- endmacro %}
