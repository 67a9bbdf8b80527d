{#-
  The dual encoder's train / validation / test split of a product, in Spark SQL: the one SQL
  definition of ml/data.py `split_of` (sha256 of the UTF-8 product id, its first 12 hex digits as
  a fraction of 16**12; below `test` -> 'test', below test + validation -> 'validation', else
  'train'). 16**12 < 2**53, so the fraction is exact in a double on both sides.
  tests/unit/test_collections_sql.py pins this SQL to ml.data.split_of on a real SparkSession:
  change both together (and retrain), or precision on unseen products stops meaning unseen.
-#}
{% macro model_split(product_id, validation=0.1, test=0.1) -%}
    case
        when cast(conv(substr(sha2(cast({{ product_id }} as string), 256), 1, 12), 16, 10) as double) / 281474976710656.0 < {{ test }}
            then 'test'
        when cast(conv(substr(sha2(cast({{ product_id }} as string), 256), 1, 12), 16, 10) as double) / 281474976710656.0 < {{ test + validation }}
            then 'validation'
        else 'train'
    end
{%- endmacro %}
