"""Precision@10 of every published collection against merchant data, for this pipeline and for a
keyword baseline (the stand-in for search-log pages).

A product in a collection's top 10 counts as correct when the merchant's own data (catalog fields
and merchant attributes, i.e. product_attributes_curated rows from the `catalog` backend) carries
every attribute of the collection. The baseline fills the same collection by BM25 search of its
title over product title + description (ml/evaluate.py SparseBM25: rank_bm25's Okapi scores over a
sparse index, so a 1M-product catalog costs milliseconds per collection, not seconds).

Most feed products were in the dual encoder's training split, where their merchant attributes were
the training labels, so the feed's precision flatters the model. `unseen_*` measures the same
feed restricted to the model's test-split products (collection_feeds.model_split, from the
model_split macro, the warehouse's copy of ml/data.py split_of): its first k such products, in feed
order. Unseen products are a tenth of a feed, so its first k of them reach far down the feed, into
the partial matches (all but one attribute) that sit below every full match; `unseen_full_*` keeps
to full matches, the make-up of a feed's first k positions. `legacy_*` measures the feed as it was
before variant collapse and brand diversity (int_collection_feed_variants.legacy_position), so the
change in feed order can be checked against precision.
"""

K = 10


def precision(product_ids, wanted, truth):
    hits = sum(1 for p in product_ids if wanted <= truth.get(p, set()))
    return hits, (hits / len(product_ids) if product_ids else None)


def model(dbt, session):
    dbt.config(materialized="table")
    from datetime import datetime, timezone

    import numpy as np
    import pandas as pd

    from ml.evaluate import tokenize

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    collections = (dbt.ref("collections").where("status = 'published'")
                   .select("collection_id", "title", "attribute_ids", "n_attributes", "anchor_attribute_type")
                   .toPandas())
    # Only the rows judged reach this process: each feed's first K, and its first K unseen and first
    # K unseen full matches (all unseen rows of a 1M-product catalog's feeds are millions).
    nth = Window.partitionBy("collection_id", "model_split").orderBy("position")
    nth_of_type = Window.partitionBy("collection_id", "model_split", "match_type").orderBy("position")
    judged_feeds = (dbt.ref("collection_feeds").where(f"position <= {K} or model_split = 'test'")
                    .withColumn("nth", F.row_number().over(nth))
                    .withColumn("nth_of_type", F.row_number().over(nth_of_type))
                    .where(f"position <= {K} or (model_split = 'test' and "
                           f"(nth <= {K} or (match_type = 'full' and nth_of_type <= {K})))")
                    .select("collection_id", "product_id", "position", "model_split", "match_type"))
    judged_legacy = (dbt.ref("int_collection_feed_variants").where(f"legacy_position <= {K}")
                     .select("collection_id", "product_id", "legacy_position"))
    feeds, legacy = judged_feeds.toPandas(), judged_legacy.toPandas()
    merchant = (dbt.ref("product_attributes_curated").where("array_contains(source_backends, 'catalog')")
                .select("product_id", "attribute_id"))

    def merchant_truth(product_ids) -> dict:
        """product_id -> the attribute ids its merchant data carries, for these products only."""
        wanted = session.createDataFrame(pd.DataFrame({"product_id": sorted(product_ids)}), "product_id string")
        rows = merchant.join(wanted, "product_id", "left_semi").toPandas()
        return rows.groupby("product_id")["attribute_id"].agg(set).to_dict()

    truth = merchant_truth(set(feeds["product_id"]) | set(legacy["product_id"])) if len(feeds) + len(legacy) else {}
    feeds = feeds.sort_values(["collection_id", "position"])
    top = feeds.groupby("collection_id")["product_id"].agg(list).to_dict()
    unseen_rows = feeds[feeds["model_split"] == "test"]
    unseen = unseen_rows.groupby("collection_id")["product_id"].agg(list).to_dict()
    unseen_full = (unseen_rows[unseen_rows["match_type"] == "full"].groupby("collection_id")["product_id"]
                   .agg(list).to_dict())
    before = (legacy.sort_values(["collection_id", "legacy_position"]).groupby("collection_id")["product_id"]
              .agg(list).to_dict())

    rows = []
    if len(collections):
        from ml.evaluate import SparseBM25

        products = dbt.ref("int_products").select("product_id", "title", "description").toPandas()
        texts = (products["title"].fillna("") + " " + products["description"].fillna("")).tolist()
        ids = products["product_id"].to_numpy()
        del products
        bm25 = SparseBM25(texts)
        del texts
        baseline = {}
        for c in collections.itertuples(index=False):
            scores = bm25.get_scores(tokenize(c.title or ""))
            best = np.argsort(-scores, kind="stable")[:K]
            baseline[c.collection_id] = [ids[i] for i in best if scores[i] > 0]
        del bm25
        missing = {p for picked in baseline.values() for p in picked} - set(truth)
        if missing:
            truth |= merchant_truth(missing)
        for c in collections.itertuples(index=False):
            wanted = set(c.attribute_ids)
            pipeline_ids = top.get(c.collection_id, [])[:K]
            baseline_ids = baseline[c.collection_id]
            unseen_ids = unseen.get(c.collection_id, [])[:K]
            unseen_full_ids = unseen_full.get(c.collection_id, [])[:K]
            legacy_ids = before.get(c.collection_id, [])[:K]
            p_hits, p_precision = precision(pipeline_ids, wanted, truth)
            b_hits, b_precision = precision(baseline_ids, wanted, truth)
            u_hits, u_precision = precision(unseen_ids, wanted, truth)
            f_hits, f_precision = precision(unseen_full_ids, wanted, truth)
            l_hits, l_precision = precision(legacy_ids, wanted, truth)
            rows.append((c.collection_id, int(c.n_attributes), c.anchor_attribute_type, K,
                         len(pipeline_ids), p_hits, p_precision, len(unseen_ids), u_hits, u_precision,
                         len(unseen_full_ids), f_hits, f_precision,
                         len(legacy_ids), l_hits, l_precision,
                         len(baseline_ids), b_hits, b_precision if baseline_ids else 0.0))
    frame = pd.DataFrame(rows, columns=["collection_id", "n_attributes", "anchor_attribute_type", "k",
                                        "pipeline_products", "pipeline_hits", "pipeline_precision",
                                        "unseen_products", "unseen_hits", "unseen_precision",
                                        "unseen_full_products", "unseen_full_hits", "unseen_full_precision",
                                        "legacy_products", "legacy_hits", "legacy_precision",
                                        "bm25_products", "bm25_hits", "bm25_precision"])
    for column in ("pipeline_precision", "unseen_precision", "unseen_full_precision", "legacy_precision"):
        # no products to judge (e.g. no unseen product in the feed): null, never NaN (NaN poisons avg)
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["evaluated_at"] = datetime.now(timezone.utc).replace(tzinfo=None)
    schema = ("collection_id string, n_attributes int, anchor_attribute_type string, k int,"
              " pipeline_products int, pipeline_hits int, pipeline_precision double,"
              " unseen_products int, unseen_hits int, unseen_precision double,"
              " unseen_full_products int, unseen_full_hits int, unseen_full_precision double,"
              " legacy_products int, legacy_hits int, legacy_precision double,"
              " bm25_products int, bm25_hits int, bm25_precision double, evaluated_at timestamp")
    return session.createDataFrame(frame, schema) if len(frame) else session.createDataFrame([], schema)
