"""Check every product photo the staged catalog references: safe path, decodes, dimensions, hash.

Runs on Spark executors with mapInPandas (one task per partition, not per row). The photo itself is
not copied into the warehouse: downstream steps read it from `image_path`, and only when valid.
"""

from datetime import datetime, timezone

import pandas as pd

RESULT_SCHEMA = (
    "product_id string, image_ref string, image_status string, reject_reason string,"
    " reject_detail string, image_path string, file_bytes bigint, sha256 string,"
    " image_format string, width int, height int, mode string, checked_at timestamp"
)


def check_partition(batches, limits):
    from pinlanding.images import check_image

    checked_at = datetime.now(timezone.utc).replace(tzinfo=None)
    for batch in batches:
        rows = []
        for product_id, image_ref, catalog_dir in batch[["product_id", "image_ref", "catalog_dir"]].itertuples(index=False):
            check = check_image(catalog_dir, image_ref, limits)
            rows.append({
                "product_id": product_id, "image_ref": image_ref, "image_status": check.status,
                "reject_reason": check.reject_reason, "reject_detail": check.reject_detail,
                "image_path": check.resolved_path if check.status == "valid" else None,
                "file_bytes": check.file_bytes, "sha256": check.sha256,
                "image_format": check.image_format, "width": check.width, "height": check.height,
                "mode": check.mode, "checked_at": checked_at,
            })
        yield pd.DataFrame(rows, columns=[c.split()[0] for c in RESULT_SCHEMA.split(", ")])


def model(dbt, session):
    dbt.config(materialized="table")
    from pinlanding.images import ImageLimits

    # dbt finds config keys by parsing `dbt.config.get(...)` calls: keep each call a plain statement.
    allowed_formats = dbt.config.get("allowed_image_formats")
    limits = ImageLimits(
        max_bytes=int(dbt.config.get("max_image_bytes")),
        max_pixels=int(dbt.config.get("max_image_pixels")),
        min_side=int(dbt.config.get("min_image_side")),
        allowed_formats=tuple(f.strip() for f in allowed_formats.split(",")),
    )
    products = (
        dbt.ref("stg_products")
        .where("image_ref is not null")
        .select("product_id", "image_ref", "catalog_dir")
    )
    # Spread the file reads over the cores: the input is small but each row is I/O + decode.
    # (The shuffle width, not SparkContext.defaultParallelism, which Spark Connect does not have.)
    partitions = max(int(session.conf.get("spark.sql.shuffle.partitions")), 1)
    return products.repartition(partitions, "product_id").mapInPandas(
        lambda batches: check_partition(batches, limits), schema=RESULT_SCHEMA
    )
