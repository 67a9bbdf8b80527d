"""Every attribute extracted for every product, one row per (product, type, value, backend).

- catalog backend, all products: structured fields + mapped merchant_attributes + known phrases
  mined from title and description (mapInPandas, one extractor per partition);
- LLM backends: the cached responses in `llm_extraction_cache` for each product's current
  content hash (the LLM itself is only called by that model).
"""

import pandas as pd

SCHEMA = (
    "product_id string, attribute_type string, raw_value string, source_backend string,"
    " confidence double, model string, prompt_version string, content_hash string"
)
COLUMNS = [c.split()[0] for c in SCHEMA.split(", ")]
LEXICON_MIN_PRODUCTS = 5  # a phrase is mined from text only if the merchant uses it this often


def build_lexicon(products, key_types, text_types):
    """phrase_key -> (type, value) for values the merchant's own fields use often enough."""
    from pyspark.sql import functions as F

    from ml.extractors import CATALOG_FIELD_TYPES, phrase_key

    pairs = []
    for field, type_ in CATALOG_FIELD_TYPES.items():
        if type_ in text_types:
            pairs.append(products.select(F.lit(type_).alias("t"), F.col(field).alias("v"), "product_id"))
    exploded = products.select("product_id", F.explode("merchant_attributes").alias("k", "v"))
    mapping = F.create_map(*[x for k, t in key_types.items() if t in text_types for x in (F.lit(k), F.lit(t))])
    pairs.append(exploded.select(mapping[F.col("k")].alias("t"), "v", "product_id").where("t is not null"))
    union = pairs[0]
    for p in pairs[1:]:
        union = union.unionByName(p)
    counted = (union.where("v is not null").groupBy("t", "v").agg(F.countDistinct("product_id").alias("n"))
               .where(f"n >= {LEXICON_MIN_PRODUCTS}").orderBy(F.desc("n"), "t", "v").collect())
    lexicon = {}
    for row in counted:
        key = phrase_key(row.v)
        if len(key) >= 3 and key not in lexicon:  # most frequent (type, value) wins a shared phrase
            lexicon[key] = (row.t, row.v)
    return lexicon


def extract_catalog(batches, key_types, lexicon):
    from ml.extractors import CatalogExtractor, Product

    extractor = CatalogExtractor(key_types, lexicon)
    for batch in batches:
        rows = []
        for rec in batch.to_dict("records"):
            fields = {k: rec[k] for k in ("article_type", "base_colour", "gender", "usage", "season", "sub_category")}
            attrs = rec["merchant_attributes"]
            product = Product(rec["product_id"], rec["title"], rec["description"], None, fields,
                              dict(attrs) if attrs is not None else {})
            for item in extractor.extract(product):
                rows.append((rec["product_id"], item.type, item.value, extractor.backend, item.confidence,
                             extractor.model, extractor.prompt_version, rec["content_hash"]))
        yield pd.DataFrame(rows, columns=COLUMNS)


def model(dbt, session):
    dbt.config(materialized="table")
    from pyspark.sql import functions as F

    from ml.extractors import TEXT_MINED_TYPES

    products = dbt.ref("int_products")
    key_types = {r.merchant_key: r.attribute_type for r in dbt.ref("merchant_attribute_types").collect()}
    lexicon = build_lexicon(products, key_types, set(TEXT_MINED_TYPES))

    catalog = products.select(
        "product_id", "title", "description", "article_type", "base_colour", "gender", "usage", "season",
        "sub_category", "merchant_attributes", "content_hash",
    ).mapInPandas(lambda batches: extract_catalog(batches, key_types, lexicon), schema=SCHEMA)

    item_schema = "array<struct<type:string,value:string,confidence:double>>"
    responses = dbt.ref("llm_extraction_cache").where("status = 'ok'")
    current = products.select("product_id", "content_hash")
    llm = (responses.join(current, ["product_id", "content_hash"], "inner")
           .dropDuplicates(["product_id", "content_hash", "backend", "model", "prompt_version"])
           .select("product_id", "backend", "model", "prompt_version", "content_hash",
                   F.explode(F.from_json("attributes_json", item_schema)).alias("item"))
           .select("product_id", F.col("item.type").alias("attribute_type"), F.col("item.value").alias("raw_value"),
                   F.col("backend").alias("source_backend"), F.col("item.confidence").alias("confidence"),
                   "model", "prompt_version", "content_hash"))
    return catalog.unionByName(llm)
