"""Land the catalog feed in the warehouse, as the merchant sent it.

Every non-blank line of `products.jsonl.gz` becomes one row of `<schema>_raw.raw_products`, even
when it does not parse: the verdict on each row (staged or quarantined, and why) belongs to the dbt
staging models, so nothing is dropped here. Field values are landed as strings (objects as JSON);
typing happens in `stg_catalog__product_lines`. Loading the same feed again is a no-op.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterator

FEED_FILE = "products.jsonl.gz"
FEED_FIELDS = (
    "product_id", "title", "brand", "gender", "master_category", "sub_category", "article_type",
    "base_colour", "season", "year", "usage", "price", "description", "merchant_attributes", "image",
)
MAX_LINE_BYTES = 1_048_576      # a longer line is landed truncated, with load error line_too_large
KEPT_BYTES_OF_BAD_LINE = 16_384  # how much of a line that did not parse is kept for inspection

RAW_COLUMNS = (
    ["_line_number", "_load_error", "_load_error_detail", "_line_bytes", "_raw_line"]
    + list(FEED_FIELDS)
    + ["_extra_fields", "_source_file", "_catalog_dir", "_batch_id", "_loaded_at"]
)


@dataclass
class LoadResult:
    batch_id: str
    feed_path: str
    feed_sha256: str
    lines_read: int
    blank_lines: int
    rows_landed: int
    load_errors: int
    skipped_unchanged: bool
    seconds: float


def _as_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def parse_line(line_number: int, raw: bytes, max_line_bytes: int = MAX_LINE_BYTES) -> dict:
    """One feed line -> one raw row. Never raises: problems are recorded in `_load_error`."""
    row: dict = dict.fromkeys(RAW_COLUMNS)
    row.update(_line_number=line_number, _line_bytes=len(raw))
    if len(raw) > max_line_bytes:
        row.update(_load_error="line_too_large", _load_error_detail=f"{len(raw)} bytes > {max_line_bytes}",
                   _raw_line=raw[:KEPT_BYTES_OF_BAD_LINE].decode("utf-8", "replace"))
        return row
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        row.update(_load_error="invalid_utf8", _load_error_detail=str(exc),
                   _raw_line=raw[:KEPT_BYTES_OF_BAD_LINE].decode("utf-8", "replace"))
        return row
    row["_raw_line"] = text
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        row.update(_load_error="unparseable_json", _load_error_detail=str(exc),
                   _raw_line=text[:KEPT_BYTES_OF_BAD_LINE])
        return row
    if not isinstance(record, dict):
        row.update(_load_error="not_a_json_object", _load_error_detail=f"got {type(record).__name__}",
                   _raw_line=text[:KEPT_BYTES_OF_BAD_LINE])
        return row
    for field in FEED_FIELDS:
        row[field] = _as_text(record.get(field))
    extra = {k: v for k, v in record.items() if k not in FEED_FIELDS}
    row["_extra_fields"] = json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
    return row


def _open_feed(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_feed(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[dict]:
    """Raw rows of a JSONL feed (gzipped or plain); blank lines are skipped (counted by caller)."""
    with _open_feed(path) as handle:
        for line_number, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                yield {"_line_number": line_number, "_blank": True}
                continue
            yield parse_line(line_number, raw, max_line_bytes)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest(spark, catalog_dir: Path, raw_schema: str, force: bool = False) -> LoadResult:
    """Land `catalog_dir/products.jsonl.gz` into `raw_schema.raw_products` (replacing the previous
    snapshot) and append one row to `raw_schema.raw_feed_loads`."""
    import pandas as pd

    started = time.perf_counter()
    catalog_dir = catalog_dir.resolve()
    feed = catalog_dir / FEED_FILE
    if not feed.is_file():
        raise FileNotFoundError(f"catalog feed not found: {feed} (set PINLANDING_CATALOG_DIR)")
    feed_sha = file_sha256(feed)
    products_table, loads_table = f"{raw_schema}.raw_products", f"{raw_schema}.raw_feed_loads"
    spark.sql(f"create database if not exists {raw_schema}")

    if not force and spark.catalog.tableExists(loads_table) and spark.catalog.tableExists(products_table):
        last = spark.sql(
            f"select batch_id, feed_path, feed_sha256 from {loads_table} order by loaded_at desc limit 1"
        ).collect()
        if last and last[0].feed_sha256 == feed_sha and last[0].feed_path == str(feed):
            landed = spark.table(products_table).where(f"_batch_id = '{last[0].batch_id}'").count()
            if landed:
                return LoadResult(last[0].batch_id, str(feed), feed_sha, 0, 0, landed, 0, True,
                                  time.perf_counter() - started)

    batch_id = uuid.uuid4().hex
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    rows, blank = [], 0
    for row in read_feed(feed):
        if row.get("_blank"):
            blank += 1
            continue
        row.update(_source_file=str(feed), _catalog_dir=str(catalog_dir), _batch_id=batch_id,
                   _loaded_at=loaded_at)
        rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=list(RAW_COLUMNS))
    schema = ", ".join(
        f"`{c}` {'bigint' if c in ('_line_number', '_line_bytes') else 'timestamp' if c == '_loaded_at' else 'string'}"
        for c in RAW_COLUMNS
    )
    df = spark.createDataFrame(frame, schema=schema) if rows else spark.createDataFrame([], schema)
    df.write.mode("overwrite").format("parquet").saveAsTable(products_table)

    load_errors = int(frame["_load_error"].notna().sum()) if rows else 0
    result = LoadResult(batch_id, str(feed), feed_sha, len(rows) + blank, blank, len(rows), load_errors,
                        False, time.perf_counter() - started)
    log = spark.createDataFrame(
        [(batch_id, str(feed), str(catalog_dir), feed_sha, feed.stat().st_size, result.lines_read, blank,
          result.rows_landed, load_errors, loaded_at, result.seconds)],
        "batch_id string, feed_path string, catalog_dir string, feed_sha256 string, feed_bytes bigint,"
        " lines_read bigint, blank_lines bigint, rows_landed bigint, load_errors bigint,"
        " loaded_at timestamp, load_seconds double",
    )
    log.write.mode("append").format("parquet").saveAsTable(loads_table)
    return result
