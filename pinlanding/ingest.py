"""Land the catalog feed in the warehouse, as the merchant sent it.

Every non-blank line of the feed becomes one row of `<schema>_raw.raw_products`, even
when it does not parse: the verdict on each row (staged or quarantined, and why) belongs to the dbt
staging models, so nothing is dropped here. Field values are landed as strings (objects as JSON);
typing happens in `stg_catalog__product_lines`. Loading the same feed again is a no-op.

The feed is `products.jsonl.gz`, or the same split into shards `products-*.jsonl.gz` (what large
catalogs export: e.g. `products-00001.jsonl.gz`, ...), read as one feed in the natural order of
their names (`products-2` before `products-10`). Line numbers count through the whole feed in that
order, so "the last line of a product id wins" and every downstream line reference mean the same for
either form; `_source_file` says which shard a line came from. Shards are also how a large feed is
read on several cores at once: a gzip file is one read task.

Spark parses the feed (`ingest`, DataFrame/SQL API only, so it also runs on Spark Connect and on a
cluster); `parse_line` / `read_feed` are the same rules in plain Python for scoring outside dbt
(`pinlanding predict`). Both are strict RFC 8259 JSON: NaN/Infinity, duplicate keys and nesting
deeper than Jackson's limit (1000) make a line `unparseable_json`, and neither ever raises on a line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterator
from urllib.parse import unquote

FEED_FILE = "products.jsonl.gz"
FEED_SHARDS = "products-*.jsonl.gz"  # the same feed split into parts (never both in one catalog dir)
FEED_FIELDS = (
    "product_id", "title", "brand", "gender", "master_category", "sub_category", "article_type",
    "base_colour", "season", "year", "usage", "price", "description", "merchant_attributes", "image",
)
# Fields the feed contract says are JSON strings (or null). A number, boolean, object or array sent
# there is recorded in `_type_errors` and quarantined by staging (`invalid_field_type`). year/price
# are typed by staging (try_cast) and merchant_attributes by its own check.
STRING_FIELDS = tuple(f for f in FEED_FIELDS if f not in ("year", "price", "merchant_attributes"))
MAX_LINE_BYTES = 1_048_576      # a longer line is landed truncated, with load error line_too_large
KEPT_BYTES_OF_BAD_LINE = 16_384  # how much of a line that did not parse is kept for inspection
INGEST_BYTES_PER_PARTITION = 32 * 1024 * 1024  # feed file bytes per parse partition (gzip: one read task)
BLANK_CHARS = " \t\r\x0b\x0c"  # what bytes.strip() strips (besides the newline Spark splits on)
MAX_JSON_DEPTH = 1000            # Jackson's StreamReadConstraints default, which Spark's parser enforces

RAW_COLUMNS = (
    ["_line_number", "_load_error", "_load_error_detail", "_line_bytes", "_raw_line"]
    + list(FEED_FIELDS)
    + ["_extra_fields", "_type_errors", "_source_file", "_catalog_dir", "_batch_id", "_loaded_at"]
)
_BIGINT_COLUMNS = ("_line_number", "_line_bytes")
# Parquet tries a dictionary for every column chunk and falls back to plain encoding once it
# passes 1 MB; for columns (nearly) unique per product that attempt is wasted work (1M lines:
# about 4 of the write's 10 s). Table options, so every later insertInto writes the same way.
RAW_TABLE_OPTIONS = {f"parquet.enable.dictionary#{c}": "false" for c in (
    "_line_number", "_raw_line", "product_id", "title", "description", "merchant_attributes", "image")}


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


# ----------------------------------------------------------------------------- plain Python path

def _as_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return _compact_json(value)


def _compact_json(value) -> str:
    # Sorted keys, no spaces: the same text Spark's to_json writes for a variant, so both paths agree.
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "string"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _no_duplicate_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def type_errors(record: dict) -> str | None:
    """'field: json type; ...' for the STRING_FIELDS that are present, not null and not strings."""
    found = [f"{f}: {_json_type(record[f])}" for f in STRING_FIELDS
             if record.get(f) is not None and not isinstance(record[f], str)]
    return "; ".join(found) or None


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
        record = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:  # a hostile line nested thousands deep: a verdict, not a crash
        row.update(_load_error="unparseable_json",
                   _load_error_detail=f"nesting deeper than the parser allows (limit {MAX_JSON_DEPTH})",
                   _raw_line=text[:KEPT_BYTES_OF_BAD_LINE])
        return row
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, duplicate keys
        row.update(_load_error="unparseable_json", _load_error_detail=str(exc)[:1000],
                   _raw_line=text[:KEPT_BYTES_OF_BAD_LINE])
        return row
    if not isinstance(record, dict):
        row.update(_load_error="not_a_json_object", _load_error_detail=f"got {_json_type(record) if record is not None else 'null'}",
                   _raw_line=text[:KEPT_BYTES_OF_BAD_LINE])
        return row
    try:
        for field in FEED_FIELDS:
            row[field] = _as_text(record.get(field))
        extra = {k: v for k, v in record.items() if k not in FEED_FIELDS}
        row["_extra_fields"] = _compact_json(extra) if extra else None
    except (RecursionError, ValueError) as exc:  # re-serialising a value nested near the limit
        row.update({f: None for f in FEED_FIELDS}, _extra_fields=None, _load_error="unparseable_json",
                   _load_error_detail=f"cannot re-serialise a value: {type(exc).__name__}",
                   _raw_line=text[:KEPT_BYTES_OF_BAD_LINE])
        return row
    row["_type_errors"] = type_errors(record)
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


def _natural_key(path: Path):
    """products-2 before products-10 (numbers compared as numbers), then the plain name."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)], path.name


def feed_files(catalog_dir: Path) -> list[Path]:
    """The feed's files in feed order: `products.jsonl.gz`, or its shards `products-*.jsonl.gz`."""
    single = catalog_dir / FEED_FILE
    shards = sorted((p for p in catalog_dir.glob(FEED_SHARDS) if p.is_file()), key=_natural_key)
    if single.is_file() and shards:
        raise ValueError(f"{catalog_dir} holds both {FEED_FILE} and {len(shards)} shard(s) {FEED_SHARDS}"
                         f" ({shards[0].name}, ...): which is the feed is ambiguous; remove one form")
    if single.is_file():
        return [single]
    if shards:
        return shards
    raise FileNotFoundError(f"catalog feed not found: {single} or {catalog_dir / FEED_SHARDS}"
                            " (set PINLANDING_CATALOG_DIR)")


def feed_identity(catalog_dir: Path, files: list[Path]) -> tuple[str, str]:
    """(feed_path, feed_sha256) of a feed as `raw_feed_loads` records it: the file and its hash, or
    for shards the pattern and a hash over each shard's name and hash (renaming, reordering, adding
    or removing a shard is a different feed)."""
    if len(files) == 1 and files[0].name == FEED_FILE:
        return str(files[0]), file_sha256(files[0])
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\t{file_sha256(path)}\n".encode())
    return str(catalog_dir / FEED_SHARDS), digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------- Spark path

def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _json_type_sql(variant: str) -> str:
    """JSON type name of a variant value, from the first word of its schema (STRING, BIGINT, ...)."""
    kind = f"regexp_extract(schema_of_variant({variant}), '^[A-Z]+', 0)"
    return (f"case {kind} when 'STRING' then 'string' when 'VOID' then 'null' when 'BOOLEAN' then 'boolean'"
            f" when 'OBJECT' then 'object' when 'ARRAY' then 'array' else 'number' end")


def parse_feed(spark, feed: Path | list[Path], max_line_bytes: int = MAX_LINE_BYTES):
    """Every line of the feed (one file, or shards in feed order), numbered through the whole feed,
    as the raw columns up to `_type_errors`, plus `_source_file` and `_blank`.

    Line numbers: a gzip file is not splittable, so Spark reads it whole, in file order, in one
    partition; monotonically_increasing_id() counts up through it, starting at 0 for a one-file
    feed (ingest verifies the numbering against the line count). Shards are read in one scan (Spark
    packs small files into shared partitions, one after another); a first pass over that same scan
    finds each shard's first id and line count, so a line's number is its id minus its shard's
    first id plus the lines of the shards before it (the ids are the same in both passes: same
    files, same packing, same order). `lineSep` is "\\n" only (Python's line rule), so a stray CR
    inside a line does not split it. The text reader hands over the line's bytes unvalidated, which
    is what lets is_valid_utf8 see invalid UTF-8 (and try_parse_json must never see such a line:
    it would parse it).
    """
    from pyspark.sql import functions as F

    files = [Path(feed)] if isinstance(feed, (str, Path)) else [Path(f) for f in feed]
    scan = spark.read.option("lineSep", "\n").text([str(f) for f in files]).select(
        F.monotonically_increasing_id().alias("id"), "value", F.col("_metadata.file_name").alias("file"))
    if len(files) == 1:
        number, source = F.col("id") + 1, F.lit(str(files[0]))
    else:
        # Spark names a file URI-encoded ("a b%.gz" -> "a%20b%25.gz"; "+" and non-ASCII kept):
        # unquote (not unquote_plus) gives the name back.
        stats = {unquote(r.file): r for r in
                 scan.groupBy("file").agg(F.min("id").alias("first_id"), F.count("*").alias("lines")).collect()}
        shift, source, offset = {}, {}, 0  # Spark's name of a shard -> id-to-line-number shift, path
        for path in files:
            if path.name in stats:  # an empty shard has no rows to number
                shard = stats[path.name]
                shift[shard.file], source[shard.file] = offset - shard.first_id + 1, str(path)
                offset += shard.lines
        number = F.col("id") + F.create_map(*[F.lit(x) for kv in shift.items() for x in kv])[F.col("file")]
        source = F.create_map(*[F.lit(x) for kv in source.items() for x in kv])[F.col("file")]
    lines = scan.select(
        number.alias("_line_number"),
        F.expr("trim(TRAILING '\\r' FROM value)").alias("line"),  # CRLF feeds: drop the CR, as rstrip does
        source.alias("_source_file"),
    )
    # A gzip file is read by one task, so a one-file feed would parse on one core. Large feeds are
    # spread over more partitions after numbering (hash of the line number: deterministic, no sort).
    # Measured on 2 idle cores, parse only: 250k lines 16.1 s in one task vs 9.7 s over 2
    # partitions; at 43k the shuffle costs more than it saves (3.1 s vs 3.5 s), hence the size
    # threshold. Shards are spread too: Spark packs them into few read partitions (8 shards of a 1M
    # feed: 3, uneven on 2 cores); spread 25.0 s vs as read 26.0 s, parse only, warm.
    partitions = min(int(spark.conf.get("spark.sql.shuffle.partitions")),
                     sum(path.stat().st_size for path in files) // INGEST_BYTES_PER_PARTITION)
    if partitions >= 2:
        lines = lines.repartition(partitions, "_line_number")
    return parse_lines(lines, max_line_bytes)


def parse_lines(lines, max_line_bytes: int = MAX_LINE_BYTES):
    """`parse_feed`'s rules over a DataFrame of (`_line_number`, `line`); other columns (e.g.
    `_source_file`) are passed through."""
    from pyspark.sql import functions as F

    line = F.col("line")
    # btrim copies the whole line (~3 s per 1M lines of ~1 KB, measured): only lines that start with
    # a blank character can be blank or have their first JSON character further in.
    starts_blank = F.left(line, F.lit(1)).isin(*BLANK_CHARS)
    trimmed = F.call_function("btrim", line, F.lit(BLANK_CHARS))
    checked = lines.withColumns({
        "_blank": (line == "") | (starts_blank & (trimmed == "")),
        "_line_bytes": F.octet_length(line),
        "too_large": F.octet_length(line) > int(max_line_bytes),
        "utf8": F.expr("is_valid_utf8(line)"),
    })
    # Jackson (strict: no NaN, no duplicate keys, depth <= 1000) only on lines that can be JSON;
    # try_ turns every parser failure, deep nesting included, into null instead of an exception.
    parsed = checked.withColumn(
        "v", F.when(~F.col("_blank") & ~F.col("too_large") & F.col("utf8"), F.expr("try_parse_json(line)")))
    # The line parsed, so its first non-blank character tells its JSON type.
    first_char = F.left(F.when(starts_blank, trimmed).otherwise(line), F.lit(1))
    classified = parsed.withColumn(
        "_load_error",
        F.when(F.col("_blank"), F.lit(None))
        .when(F.col("too_large"), "line_too_large")
        .when(~F.col("utf8"), "invalid_utf8")
        .when(F.col("v").isNull(), "unparseable_json")
        .when(first_char != "{", "not_a_json_object"),
    )
    error = F.col("_load_error")
    opened = F.length(line) - F.length(F.translate(line, "{[", ""))  # evaluated for failed lines only
    unparseable_detail = (
        F.when(line.rlike(r"[:,\[][ \t]*+-?(NaN|Infinity)\b"),
               F.lit("not valid JSON: NaN and Infinity are not JSON numbers"))
        .when(opened > MAX_JSON_DEPTH,
              F.concat(F.lit(f"not valid JSON, or nested deeper than {MAX_JSON_DEPTH} levels (the line opens "),
                       opened.cast("string"), F.lit(" objects/arrays)")))
        .otherwise(F.lit("not valid JSON (RFC 8259; a key sent twice in one object is also rejected)"))
    )
    detail = (
        F.when(error == "line_too_large",
               F.concat(F.col("_line_bytes").cast("string"), F.lit(f" bytes > {int(max_line_bytes)}")))
        .when(error == "invalid_utf8",
              F.concat(F.lit("not valid UTF-8: "), F.col("_line_bytes").cast("string"),
                       F.lit(" bytes; invalid sequences are shown as U+FFFD in _raw_line")))
        .when(error == "unparseable_json", unparseable_detail)
        .when(error == "not_a_json_object", F.concat(F.lit("got "), F.expr(_json_type_sql("v"))))
    )
    raw_line = (
        F.when(error.isin("line_too_large", "invalid_utf8"),
               F.expr(f"make_valid_utf8(cast(substring(cast(line as binary), 1, {KEPT_BYTES_OF_BAD_LINE}) as string))"))
        .when(error.isNotNull(), F.expr(f"left(line, {KEPT_BYTES_OF_BAD_LINE})"))
        .otherwise(line)
    )
    ok = error.isNull() & ~F.col("_blank")
    fields = {f: F.when(ok, F.expr(f"try_variant_get(v, '$.{f}', 'string')")) for f in FEED_FIELDS}
    # Every string field's JSON type on every parsed line: 12 scalar schema_of_variant calls cost
    # less than the regex prefilter over the raw line that used to gate them (1M lines on 2 cores:
    # 1.6 s vs 3.7 s).
    type_checks = [
        F.expr(f"case when schema_of_variant(variant_get(v, '$.{f}')) not in ('STRING', 'VOID')"
               f" then concat('{f}: ', {_json_type_sql(f'variant_get(v, {chr(39)}$.{f}{chr(39)})')}) end")
        for f in STRING_FIELDS
    ]
    # Extra keys are rare: find them with array_except (code-generated) and run the map_filter
    # lambda (interpreted, slower) only on the lines that have some.
    extra_map = F.expr(f"case when size(array_except(map_keys(cast(v as map<string, variant>)),"
                       f" array({_sql_list(FEED_FIELDS)}))) > 0 then map_filter(cast(v as map<string, variant>),"
                       f" (k, x) -> not array_contains(array({_sql_list(FEED_FIELDS)}), k)) end")
    passed_through = [c for c in lines.columns if c not in ("_line_number", "line")]
    rows = classified.select(
        "_line_number", *passed_through, "_blank", "_load_error", detail.alias("_load_error_detail"), "_line_bytes",
        raw_line.alias("_raw_line"), *[c.alias(f) for f, c in fields.items()],
        F.when(ok, extra_map).alias("extra_map"),
        F.when(ok, F.nullif(F.concat_ws("; ", *type_checks), F.lit(""))).alias("_type_errors"),
    )
    return rows.withColumn("_extra_fields", F.to_json("extra_map")).drop("extra_map")


def _table_is_current(spark, table: str) -> bool:
    """The raw table exists with this version's columns and write options (else it is recreated)."""
    if not spark.catalog.tableExists(table) or spark.table(table).columns != list(RAW_COLUMNS):
        return False
    try:
        ddl = spark.sql(f"show create table {table}").first()[0]
    except Exception:  # e.g. a Hive-serde table Spark cannot show as DDL: recreate it
        return False
    return all(f"'{key}' = '{value}'" in ddl for key, value in RAW_TABLE_OPTIONS.items())


def ingest(spark, catalog_dir: Path, raw_schema: str, force: bool = False) -> LoadResult:
    """Land the feed of `catalog_dir` (`products.jsonl.gz` or its shards, see `feed_files`) into
    `raw_schema.raw_products` (replacing the previous snapshot) and append one row to
    `raw_schema.raw_feed_loads`."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    started = time.perf_counter()
    catalog_dir = catalog_dir.resolve()
    files = feed_files(catalog_dir)
    feed, feed_sha = feed_identity(catalog_dir, files)
    products_table, loads_table = f"{raw_schema}.raw_products", f"{raw_schema}.raw_feed_loads"
    spark.sql(f"create database if not exists {raw_schema}")

    if not force and spark.catalog.tableExists(loads_table) and spark.catalog.tableExists(products_table):
        last = spark.sql(
            f"select batch_id, feed_path, feed_sha256 from {loads_table} order by loaded_at desc limit 1"
        ).collect()
        if last and last[0].feed_sha256 == feed_sha and last[0].feed_path == feed:
            landed = spark.table(products_table).where(F.col("_batch_id") == last[0].batch_id).count()
            if landed:
                return LoadResult(last[0].batch_id, feed, feed_sha, 0, 0, landed, 0, True,
                                  time.perf_counter() - started)

    batch_id = uuid.uuid4().hex
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    # Counted while the table is written (one pass over the feed), blank lines included.
    stats = Observation(f"feed_{batch_id}")
    rows = parse_feed(spark, files).observe(
        stats,
        F.count(F.lit(1)).alias("lines_read"),
        F.count_if(F.col("_blank")).alias("blank_lines"),
        F.count_if(F.col("_load_error").isNotNull()).alias("load_errors"),
        F.coalesce(F.max("_line_number"), F.lit(0)).alias("last_line"),
    )
    metadata = {"_catalog_dir": F.lit(str(catalog_dir)),
                "_batch_id": F.lit(batch_id), "_loaded_at": F.lit(loaded_at).cast("timestamp")}
    landed = rows.where(~F.col("_blank")).withColumns(metadata).select(
        *[F.col(c).cast("bigint" if c in _BIGINT_COLUMNS else "timestamp" if c == "_loaded_at" else "string")
          for c in RAW_COLUMNS])
    if _table_is_current(spark, products_table):
        # Replace the files of the existing table: no metastore drop + create (seconds on Derby).
        landed.write.insertInto(products_table, overwrite=True)
    else:
        # Drop + create: a run that dies in between leaves no raw table, and the next ingest lands
        # the feed again (the unchanged-feed skip above needs the table).
        landed.write.mode("overwrite").format("parquet").options(**RAW_TABLE_OPTIONS).saveAsTable(products_table)

    counts = stats.get
    lines_read, blank = int(counts["lines_read"]), int(counts["blank_lines"])
    if counts["last_line"] != lines_read:  # the feed was split: line numbers would be wrong
        raise RuntimeError(f"line numbering is not contiguous ({counts['last_line']} != {lines_read} lines);"
                           f" each feed file must be gzip (one read task per file), not changed while it is read")
    result = LoadResult(batch_id, feed, feed_sha, lines_read, blank, lines_read - blank,
                        int(counts["load_errors"]), False, time.perf_counter() - started)
    feed_bytes = sum(path.stat().st_size for path in files)
    log = spark.createDataFrame(
        [(batch_id, feed, str(catalog_dir), feed_sha, feed_bytes, result.lines_read, blank,
          result.rows_landed, result.load_errors, loaded_at, result.seconds)],
        "batch_id string, feed_path string, catalog_dir string, feed_sha256 string, feed_bytes bigint,"
        " lines_read bigint, blank_lines bigint, rows_landed bigint, load_errors bigint,"
        " loaded_at timestamp, load_seconds double",
    )
    log.write.mode("append").format("parquet").saveAsTable(loads_table)
    return result
