import gzip
import json

from pinlanding.ingest import FEED_FIELDS, RAW_COLUMNS, parse_line, read_feed


def test_valid_line_lands_fields_as_text():
    record = {"product_id": "7", "title": "Tee & Co", "price": 499, "year": None,
              "merchant_attributes": {"Fit": "Slim"}, "colour_code": 3}
    row = parse_line(1, json.dumps(record).encode())
    assert row["_load_error"] is None
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


def test_read_feed_numbers_lines_and_flags_blanks(tmp_path):
    feed = tmp_path / "products.jsonl.gz"
    with gzip.open(feed, "wb") as handle:
        handle.write(b'{"product_id": "1", "title": "a"}\n\n   \n{"product_id": "2"}\r\n')
    rows = list(read_feed(feed))
    assert [r["_line_number"] for r in rows] == [1, 2, 3, 4]
    assert [bool(r.get("_blank")) for r in rows] == [False, True, True, False]
    assert rows[3]["product_id"] == "2"
