"""Feed ingest: the plain-Python line parser (used by `predict`) and the Spark ingest, on real Spark.

The Spark tests run a local session with an in-memory catalog (no Derby), so they can run beside a
pipeline. Both parsers must give every line the same verdict; `test_spark_and_python_agree` checks
that line by line over a feed of hostile lines.
"""

import gzip
import json
import os
import sys

import pytest

from pinlanding.ingest import (FEED_FIELDS, MAX_JSON_DEPTH, RAW_COLUMNS, _BIGINT_COLUMNS, _table_is_current,
                               feed_files, ingest, parse_feed, parse_line, read_feed)


def test_valid_line_lands_fields_as_text():
    record = {"product_id": "7", "title": "Tee & Co", "price": 499, "year": None,
              "merchant_attributes": {"Fit": "Slim"}, "colour_code": 3}
    row = parse_line(1, json.dumps(record).encode())
    assert row["_load_error"] is None and row["_type_errors"] is None
    assert row["product_id"] == "7" and row["title"] == "Tee & Co"
    assert row["price"] == "499" and row["year"] is None
    assert json.loads(row["merchant_attributes"]) == {"Fit": "Slim"}
    assert json.loads(row["_extra_fields"]) == {"colour_code": 3}
    assert set(row) == set(RAW_COLUMNS)


def test_unparseable_line_is_kept_with_reason():
    row = parse_line(3, b'{"product_id": "1", "title": ')
    assert row["_load_error"] == "unparseable_json"
    assert "Expecting value" in row["_load_error_detail"]
    assert row["_raw_line"].startswith('{"product_id"')
    assert all(row[f] is None for f in FEED_FIELDS)


def test_non_object_json_and_bad_utf8_and_huge_lines():
    assert parse_line(1, b"[1, 2]")["_load_error"] == "not_a_json_object"
    assert parse_line(1, b'"just a string"')["_load_error"] == "not_a_json_object"
    assert parse_line(1, b'{"title": "\xff\xfe"}')["_load_error"] == "invalid_utf8"
    huge = parse_line(1, b'{"title": "' + b"x" * 5000 + b'"}', max_line_bytes=1000)
    assert huge["_load_error"] == "line_too_large" and huge["_line_bytes"] == 5013


def test_hostile_json_is_a_verdict_not_an_exception():
    deep = b'{"product_id": "1", "merchant_attributes": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
    row = parse_line(1, deep)  # json.loads alone raises RecursionError here
    assert row["_load_error"] == "unparseable_json" and str(MAX_JSON_DEPTH) in row["_load_error_detail"]
    assert len(row["_raw_line"]) == 16_384
    assert parse_line(1, b'{"product_id": "1", "price": NaN}')["_load_error"] == "unparseable_json"
    assert parse_line(1, b'{"product_id": "1", "price": -Infinity}')["_load_error"] == "unparseable_json"
    dup = parse_line(1, b'{"product_id": "1", "price": 1, "price": -1}')
    assert dup["_load_error"] == "unparseable_json" and "price" in dup["_load_error_detail"]


def test_non_string_text_fields_are_flagged():
    row = parse_line(1, json.dumps({"product_id": 15970, "title": ["a"], "brand": {"x": 1}, "usage": True,
                                    "price": "499", "year": 2011, "merchant_attributes": {"Fit": 3}}).encode())
    assert row["_load_error"] is None
    assert row["_type_errors"] == "product_id: number; title: array; brand: object; usage: boolean"
    assert row["product_id"] == "15970" and row["usage"] == "true"  # landed as sent, as text


def test_read_feed_numbers_lines_and_flags_blanks(tmp_path):
    feed = tmp_path / "products.jsonl.gz"
    with gzip.open(feed, "wb") as handle:
        handle.write(b'{"product_id": "1", "title": "a"}\n\n   \n{"product_id": "2"}\r\n')
    rows = list(read_feed(feed))
    assert [r["_line_number"] for r in rows] == [1, 2, 3, 4]
    assert [bool(r.get("_blank")) for r in rows] == [False, True, True, False]
    assert rows[3]["product_id"] == "2"


def test_feed_files_are_the_feed_or_its_shards_in_natural_order(tmp_path):
    for name in ("products-10.jsonl.gz", "products-2.jsonl.gz", "products-1.jsonl.gz", "products.jsonl",
                 "other-3.jsonl.gz", "products-9.jsonl"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "products-3.jsonl.gz").mkdir()  # not a file
    assert [p.name for p in feed_files(tmp_path)] == [
        "products-1.jsonl.gz", "products-2.jsonl.gz", "products-10.jsonl.gz"]
    (tmp_path / "products.jsonl.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="ambiguous"):
        feed_files(tmp_path)
    for shard in tmp_path.glob("products-*.jsonl.gz"):
        if shard.is_file():
            shard.unlink()
    assert [p.name for p in feed_files(tmp_path)] == ["products.jsonl.gz"]
    with pytest.raises(FileNotFoundError, match="products-\\*.jsonl.gz"):
        feed_files(tmp_path / "empty")


# ------------------------------------------------------------------------------------- Spark path

HOSTILE_LINES = [
    json.dumps({"product_id": "1", "title": "Tee & Co", "price": 499, "year": None, "merchant_attributes":
                {"Fit": "Slim", "Neck": "Round"}, "image": None, "colour_code": 3, "tags": ["a", "b"]}).encode(),
    b"",
    b"  \t ",
    b'{"product_id": "2", "title": "\xff\xfe broken"}',
    b'{"product_id": "3", "price": NaN}',
    b'{"product_id": "3b", "price": Infinity}',
    b"[1, 2, 3]",
    b"null",
    b"42",
    b'"a string"',
    b'{"product_id": "4", "merchant_attributes": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
    b'{"product_id": "4b", "merchant_attributes": ' + b"[" * 900 + b"]" * 900 + b"}",  # deep but legal
    b'{"product_id": "5", "title": "a", "title": "b"}',
    b'{"product_id": "6", "title": ',
    json.dumps({"product_id": 7, "title": 3.5, "brand": True, "description": {"k": [1]}, "price": "12",
                "year": "2011"}).encode(),
    b'{"product_id": "8",\r"title": "stray CR inside the line"}',
    b'{"product_id": "9", "title": "crlf line"}\r',
    json.dumps({"product_id": "10", "title": "x" * 50_000}).encode(),  # > max_line_bytes below
    json.dumps({"product_id": "11", "title": "\u202eevil\u0000 \u200b", "brand": "</script><script>alert(1)"
                "</script>", "description": "{{ 7*7 }} {% raw %}", "merchant_attributes": {"{{k}}": "<b>v</b>"}},
               ensure_ascii=False).encode(),
    json.dumps({"product_id": "12", "price": 1e400}).encode().replace(b"Infinity", b"1e400"),
    b'   {"product_id": "13", "title": "leading blanks"}',
    b'{"product_id": "14", "\\u0074itle": 5}',  # a key spelled with an escape is still "title"
    b"\x0b\x0c \t",  # blank: every character is one bytes.strip() strips
    b"\t [1]",  # leading blanks, then not an object
    b' \t{"product_id": "15", "title": 7}',  # leading blanks before a typed field
    b"",
]
MAX_BYTES = 40_000


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warehouse = tmp_path_factory.mktemp("warehouse")
    session = (SparkSession.builder.master("local[2]").appName("test_ingest")
               .config("spark.driver.memory", os.environ.get("PINLANDING_DRIVER_MEMORY", "3g"))
               .config("spark.sql.catalogImplementation", "in-memory")
               .config("spark.sql.warehouse.dir", str(warehouse))
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "3")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.enabled", "false").getOrCreate())
    yield session
    session.stop()


def _write_feed(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture(params=["one partition", "spread over partitions"])
def parse_partitioning(request, monkeypatch):
    """Small feeds parse in their one read task; large ones are spread over partitions after
    numbering. Every line's verdict must be the same either way."""
    import pinlanding.ingest

    if request.param == "spread over partitions":
        monkeypatch.setattr(pinlanding.ingest, "INGEST_BYTES_PER_PARTITION", 1)  # every feed counts as large
    return request.param


def test_spark_and_python_agree(spark, tmp_path, parse_partitioning):
    feed = _write_feed(tmp_path / "products.jsonl.gz", HOSTILE_LINES)
    spark_rows = {r["_line_number"]: r.asDict() for r in parse_feed(spark, feed, MAX_BYTES).collect()}
    python_rows = {r["_line_number"]: r for r in read_feed(feed, MAX_BYTES)}
    assert sorted(spark_rows) == sorted(python_rows) == list(range(1, len(HOSTILE_LINES) + 1))
    for number, expected in python_rows.items():
        got = spark_rows[number]
        assert got["_blank"] == bool(expected.get("_blank")), number
        if got["_blank"]:
            continue
        context = (number, HOSTILE_LINES[number - 1][:80])
        for column in ("_load_error", "_line_bytes", "_type_errors", *FEED_FIELDS):
            if column in ("merchant_attributes",) and expected[column] is not None:
                assert json.loads(got[column]) == json.loads(expected[column]), context
            elif column == "price" and expected[column] is not None:
                assert float(got[column]) == float(expected[column]), context  # 1e400: both inf
            else:
                assert got[column] == expected[column], (column, context)
        assert (got["_extra_fields"] and json.loads(got["_extra_fields"])) == (
            expected["_extra_fields"] and json.loads(expected["_extra_fields"])), context
        assert got["_raw_line"] == expected["_raw_line"], context
        assert (got["_load_error_detail"] is None) == (expected["_load_error_detail"] is None), context


def test_spark_gives_each_hostile_line_its_reason(spark, tmp_path):
    feed = _write_feed(tmp_path / "products.jsonl.gz", HOSTILE_LINES)
    rows = {r["_line_number"]: r for r in parse_feed(spark, feed, MAX_BYTES).collect()}
    reason = {n: r["_load_error"] for n, r in rows.items()}
    assert reason[4] == "invalid_utf8" and "\ufffd" in rows[4]["_raw_line"]
    assert reason[5] == reason[6] == "unparseable_json" and "NaN" in rows[5]["_load_error_detail"]
    assert [reason[n] for n in (7, 8, 9, 10)] == ["not_a_json_object"] * 4
    assert [rows[n]["_load_error_detail"] for n in (7, 8, 9, 10)] == ["got array", "got null", "got number",
                                                                      "got string"]
    assert reason[11] == "unparseable_json" and "5001" in rows[11]["_load_error_detail"]
    assert len(rows[11]["_raw_line"]) == 16_384
    assert reason[12] is None and rows[12]["_type_errors"] is None  # depth 901 is legal JSON
    assert reason[13] == reason[14] == "unparseable_json"
    assert rows[15]["_type_errors"] == "product_id: number; title: number; brand: boolean; description: object"
    assert (rows[15]["product_id"], rows[15]["price"], rows[15]["year"]) == ("7", "12", "2011")
    assert rows[16]["title"] == "stray CR inside the line"  # one line, not two: only \n ends a line
    assert rows[17]["title"] == "crlf line" and rows[17]["_line_bytes"] == len(HOSTILE_LINES[16]) - 1
    assert reason[18] == "line_too_large" and rows[18]["_line_bytes"] > MAX_BYTES
    assert rows[19]["title"] == "\u202eevil\u0000 \u200b" and rows[19]["description"] == "{{ 7*7 }} {% raw %}"
    assert json.loads(rows[19]["merchant_attributes"]) == {"{{k}}": "<b>v</b>"}
    assert rows[21]["title"] == "leading blanks"
    assert rows[22]["_type_errors"] == "title: number" and rows[22]["title"] == "5"
    assert reason[24] == "not_a_json_object" and rows[24]["_load_error_detail"] == "got array"
    assert reason[25] is None and rows[25]["_type_errors"] == "title: number" and rows[25]["product_id"] == "15"
    assert sorted(n for n, r in rows.items() if r["_blank"]) == [2, 3, 23, 26]


def test_ingest_lands_counts_and_is_a_no_op_on_an_unchanged_feed(spark, tmp_path, parse_partitioning):
    schema = "raw_" + parse_partitioning.split()[0]  # one per partitioning: the session outlives the test
    _write_feed(tmp_path / "catalog/products.jsonl.gz", HOSTILE_LINES)
    first = ingest(spark, tmp_path / "catalog", schema)
    assert (first.lines_read, first.blank_lines, first.rows_landed) == (len(HOSTILE_LINES), 4, len(HOSTILE_LINES) - 4)
    table = spark.table(f"{schema}.raw_products")
    assert table.columns == RAW_COLUMNS
    assert table.count() == first.rows_landed
    assert first.load_errors == table.where("_load_error is not null").count() == 11  # lines 4-11, 13, 14 and 24 (18 is under the default 1 MiB)
    numbers = sorted(r[0] for r in table.select("_line_number").collect())
    assert numbers == [n for n in range(1, len(HOSTILE_LINES) + 1) if n not in (2, 3, 23, 26)]
    assert table.where("_batch_id is null or _loaded_at is null or _source_file is null").count() == 0

    again = ingest(spark, tmp_path / "catalog", schema)
    assert again.skipped_unchanged and again.batch_id == first.batch_id
    log = spark.table(f"{schema}.raw_feed_loads").collect()
    assert len(log) == 1 and (log[0].lines_read, log[0].blank_lines, log[0].rows_landed) == (
        first.lines_read, 4, first.rows_landed)

    _write_feed(tmp_path / "catalog/products.jsonl.gz", HOSTILE_LINES[:3])  # changed feed: new snapshot
    third = ingest(spark, tmp_path / "catalog", schema)
    assert not third.skipped_unchanged and spark.table(f"{schema}.raw_products").count() == 1
    assert spark.table(f"{schema}.raw_feed_loads").count() == 2


def test_line_numbers_stay_exact_over_many_lines(spark, tmp_path, parse_partitioning):
    # several shuffle partitions after numbering; blank lines interleaved
    lines = [json.dumps({"product_id": str(i), "title": f"t{i}"}).encode() if i % 7 else b""
             for i in range(1, 20_001)]
    feed = _write_feed(tmp_path / "products.jsonl.gz", lines)
    rows = parse_feed(spark, feed).where("not _blank").select("_line_number", "product_id").collect()
    assert len(rows) == 20_000 - 20_000 // 7
    assert all(r["product_id"] == str(r["_line_number"]) for r in rows)


def _write_shards(directory, lines, cuts, name="products-{}.jsonl.gz"):
    """The feed `lines` split at `cuts` into products-1.jsonl.gz, ... (the last shard without a final
    newline, the middle ones may be empty)."""
    bounds = [0, *cuts, len(lines)]
    paths = []
    for k in range(len(bounds) - 1):
        part = lines[bounds[k]:bounds[k + 1]]
        path = directory / name.format(k + 1)
        directory.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wb") as handle:
            handle.write(b"\n".join(part) + (b"\n" if part and k < len(bounds) - 2 else b""))
        paths.append(path)
    return paths


def test_shards_parse_as_one_feed(spark, tmp_path, parse_partitioning):
    """A feed split into shards gets the same line numbers and verdicts as the one file, and each line
    names the shard it came from. Cuts: a shard of blank lines only, an empty shard, and more than 10
    shards so that name order and natural order differ."""
    lines = HOSTILE_LINES * 2 + [b'{"product_id": "last", "title": "the last shard has no final newline"}']
    one = {r["_line_number"]: r.asDict() for r in
           parse_feed(spark, _write_feed(tmp_path / "one/products.jsonl.gz", lines)).collect()}
    cuts = [1, 3, 3, 5, 9, 12, 17, 22, 26, 30, 31, 40]
    # Spark names files URI-encoded: spaces, "%", "#", "+" and non-ASCII must still find their shard
    paths = _write_shards(tmp_path / "sharded dir %20", lines, cuts, name="products-{} a%20b+#é.jsonl.gz")
    files = feed_files(tmp_path / "sharded dir %20")
    assert [p.name for p in files] == [p.name for p in paths] and len(files) == 13
    sharded = {r["_line_number"]: r.asDict() for r in parse_feed(spark, files).collect()}
    assert sorted(sharded) == sorted(one) == list(range(1, len(lines) + 1))
    bounds = [0, *cuts, len(lines)]
    for number, row in sharded.items():
        shard = next(k for k in range(len(bounds) - 1) if bounds[k] < number <= bounds[k + 1])
        assert row.pop("_source_file") == str(paths[shard])
        one[number].pop("_source_file")
        assert row == one[number], number


def test_ingest_lands_a_sharded_feed_and_skips_it_unchanged(spark, tmp_path):
    schema = "raw_sharded"
    lines = [json.dumps({"product_id": str(i % 50), "title": f"t{i}"}).encode() for i in range(120)]
    paths = _write_shards(tmp_path / "catalog", lines, [40, 80])
    first = ingest(spark, tmp_path / "catalog", schema)
    assert (first.lines_read, first.rows_landed, first.load_errors) == (120, 120, 0)
    assert first.feed_path == str((tmp_path / "catalog/products-*.jsonl.gz").resolve())
    table = spark.table(f"{schema}.raw_products")
    by_line = {r._line_number: r for r in table.collect()}
    assert sorted(by_line) == list(range(1, 121))
    assert all(by_line[n].title == f"t{n - 1}" and by_line[n]._source_file == str(paths[(n - 1) // 40].resolve())
               for n in by_line)
    assert ingest(spark, tmp_path / "catalog", schema).skipped_unchanged
    paths[2].rename(tmp_path / "catalog/products-0.jsonl.gz")  # same bytes, another order: another feed
    reordered = ingest(spark, tmp_path / "catalog", schema)
    assert not reordered.skipped_unchanged and reordered.feed_sha256 != first.feed_sha256
    assert spark.table(f"{schema}.raw_products").where("_line_number = 1").first().title == "t80"
    log = spark.table(f"{schema}.raw_feed_loads").orderBy("loaded_at").collect()
    assert [r.feed_bytes for r in log] == [sum(p.stat().st_size for p in (tmp_path / "catalog").iterdir())] * 2


def test_raw_table_writes_unique_columns_without_a_dictionary(spark, tmp_path):
    """The raw table carries its Parquet options, so every daily insert skips the dictionary for
    per-row-unique text; a table landed before the options existed is recreated once, not reused."""
    import pyarrow.parquet as pq

    schema = "raw_options"
    spark.sql(f"create database if not exists {schema}")
    old = spark.createDataFrame([tuple([None] * len(RAW_COLUMNS))],
                                ", ".join(f"{c} {'bigint' if c in _BIGINT_COLUMNS else 'string'}"
                                          for c in RAW_COLUMNS))
    old.write.format("parquet").saveAsTable(f"{schema}.raw_products")  # this version's columns, no options
    _write_feed(tmp_path / "catalog/products.jsonl.gz",
                [json.dumps({"product_id": str(i), "title": f"title {i % 3}", "gender": "Men"}).encode()
                 for i in range(500)])
    assert not _table_is_current(spark, f"{schema}.raw_products")
    for _ in range(2):  # the first call recreates the table, the second inserts into it
        ingest(spark, tmp_path / "catalog", schema, force=True)
        # columns and every RAW_TABLE_OPTIONS entry in the DDL, so the next call takes insertInto
        assert _table_is_current(spark, f"{schema}.raw_products")
        files = spark.table(f"{schema}.raw_products").inputFiles()
        encodings = {}
        for name in files:
            meta = pq.ParquetFile(name.removeprefix("file:")).metadata
            for g in range(meta.num_row_groups):
                for c in range(meta.num_columns):
                    column = meta.row_group(g).column(c)
                    encodings.setdefault(column.path_in_schema, set()).update(column.encodings)
        dictionary = {c for c, found in encodings.items() if {"PLAIN_DICTIONARY", "RLE_DICTIONARY"} & found}
        # three titles would take a dictionary; the option keeps them plain
        assert "gender" in dictionary and "title" not in dictionary, encodings
        assert spark.table(f"{schema}.raw_products").count() == 500
