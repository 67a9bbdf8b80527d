{#-
  The grouping key of an attribute value: lower case, '&' -> 'and', punctuation other than
  hyphens and slashes -> space, whitespace collapsed, and the last word singularised
  ("Short Sleeves" -> "short sleeve", "Tshirts" -> "tshirt", "Dresses" -> "dress").
  Display text is chosen later from the raw values, so the key may be ungrammatical.
  singularize_last_word is the project's one plural rule; ml/text.py `singularize` is the same
  rule for Python (titles, extraction grounding), pinned by tests/unit/test_titles.py.
-#}
{% macro normalize_attribute_value(column) -%}
    {%- set cleaned -%}
        trim(regexp_replace(regexp_replace(replace(lower({{ column }}), '&', ' and '), '[^a-z0-9/\\- ]+', ' '), '\\s+', ' '))
    {%- endset -%}
    {{ singularize_last_word(cleaned) }}
{%- endmacro %}

{% macro singularize_last_word(expr) -%}
    case
        when {{ expr }} rlike '[a-z]{2,}ies$' then regexp_replace({{ expr }}, 'ies$', 'y')
        when {{ expr }} rlike '(ss|sh|ch|x)es$' then regexp_replace({{ expr }}, 'es$', '')
        when {{ expr }} rlike '[a-z]{2,}[^aisu]s$' then regexp_replace({{ expr }}, 's$', '')
        else {{ expr }}
    end
{%- endmacro %}
