"""Semantic dedup: MiniLM embeddings of the vocabulary candidates (after the frequency filter and
blocklist), merged within each type above `dedup_threshold`; values the merchant's structured data
uses are never merged with each other (see ml/dedup.py)."""

import pandas as pd

SCHEMA = "attribute_type string, value_key string, canonical_key string, similarity double"


def model(dbt, session):
    dbt.config(materialized="table")
    threshold = float(dbt.config.get("dedup_threshold"))
    from ml.dedup import greedy_merge
    from ml.embeddings import embed

    # the candidates the frequency filter and blocklist kept (an int_ model: no edge back from a mart)
    kept = dbt.ref("int_attribute_filtered").where("drop_reason is null").drop("drop_reason").toPandas()

    rows = []
    for attribute_type, group in kept.groupby("attribute_type", sort=True):
        group = group.sort_values("value_key")
        vectors = embed(group["display_value"].str.lower().tolist())
        protected = (group["structured_product_count"] > 0).tolist()
        for merge in greedy_merge(group["value_key"].tolist(), group["product_count"].tolist(), vectors,
                                  threshold, protected):
            rows.append((attribute_type, merge.value_key, merge.canonical_key, merge.similarity))
    return session.createDataFrame(pd.DataFrame(rows, columns=["attribute_type", "value_key", "canonical_key", "similarity"]), SCHEMA) \
        if rows else session.createDataFrame([], SCHEMA)
