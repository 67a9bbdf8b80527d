"""A hostile catalog: a slice of the real feed with broken and malicious lines and photos mixed in.

The feed comes as three shards (`products-1`, `-2`, `-10.jsonl.gz`: natural order, not the
lexicographic one) with a product id sent again two shards later, so line numbers, "the last line
of an id wins" and the accounting of every line are checked across shard boundaries.

No line may take the catalog down: `pinlanding ingest` and the dbt build of staging, quarantine,
photo checks and the load marts must succeed, every non-blank line of the file (counted here, from
the file) must be staged or quarantined with its reason, every valid product must be staged, and a
product whose photo is unusable stays in the catalog as text-only.

Embedded Derby admits one process at a time: the subprocess steps run first (module fixture), the
in-process SparkSession for assertions is opened after they exit.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import time
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from tests.integration.feed_builder import real_products
from tests.reliability.conftest import PINLANDING, PROJECT_DIR, run_env

pytestmark = pytest.mark.integration

SCHEMA = "pinlanding"
TEXT_ONLY, WITH_PHOTO = 120, 30
BUILD = ["dbt", "build", "--select", "+catalog_load_summary", "+catalog_reject_reasons",
         "+quarantine_product_images", "--indirect-selection", "cautious"]

SHARDS = ("products-1.jsonl.gz", "products-2.jsonl.gz", "products-10.jsonl.gz")  # feed order
SCRIPT = "</script><script>alert(1)</script>"
TEMPLATE = "{{ 7*7 }} {% raw %}{{ config }}{% endraw %} ${7*7} <%= 7*7 %>"


def _product(product_id, **fields) -> dict:
    record = {"product_id": product_id, "title": f"Hostile Test Tee {product_id}", "brand": "Testwear",
              "gender": "Unisex", "master_category": "Apparel", "sub_category": "Topwear",
              "article_type": "Tshirts", "base_colour": "Blue", "season": "Summer", "year": 2020,
              "usage": "Casual", "price": 499, "description": "A test product.",
              "merchant_attributes": {"Fit": "Regular Fit"}, "image": None}
    record.update(fields)
    return record


def _line(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


def _deep(depth: int) -> str:
    return '{"a": ' * depth + '"x"' + "}" * depth


# (payload, expected reject_reason of that line; None = staged as a valid product)
HOSTILE_LINES: list[tuple[bytes, str | None]] = [
    (_line(_product("h-deep", merchant_attributes="DEEP")).replace(b'"DEEP"', _deep(5000).encode()),
     "unparseable_json"),
    (_line(_product("h-deep-ok", merchant_attributes={"Fit": json.loads(_deep(50))})),
     "invalid_merchant_attributes"),  # legal JSON, but an attribute value must be a string
    (_line(_product("h-nan")).replace(b'"price": 499', b'"price": NaN'), "unparseable_json"),
    (_line(_product("h-inf")).replace(b'"price": 499', b'"price": -Infinity'), "unparseable_json"),
    (_line(_product("h-dupkey")).replace(b'"price": 499', b'"price": 499, "price": -1'), "unparseable_json"),
    (_line(_product(900777)), "invalid_field_type"),                  # a number where the id belongs
    (_line(_product("h-num-title", title=12345)), "invalid_field_type"),
    (_line(_product("h-obj-brand", brand={"name": "Acme"})), "invalid_field_type"),
    (_line(_product("h-bool-desc", description=True)), "invalid_field_type"),
    (_line(_product("h-num-attr", merchant_attributes={"Fit": 3})), "invalid_merchant_attributes"),
    (_line(_product("h-arr-attr", merchant_attributes=["Fit", "Slim"])), "invalid_merchant_attributes"),
    (_line(_product("h-str-price", price="free")), "invalid_price"),
    (_line(_product("h-huge", description="x" * (1 << 20))), "line_too_large"),
    (_line(_product("h-utf8")).replace(b"A test product.", b"A test \xff\xfe\xc3( product."), "invalid_utf8"),
    (_line(_product("h-ws-title", title=" \t \t  ")), "empty_title"),
    (_line(_product("h-nbsp-title", title="\u00a0\u2003\u3000\u202f")), "empty_title"),
    (_line(_product("h-zw-title", title="\u200b\u200c\u200d\ufeff\u2060")), "empty_title"),
    (_line(_product("h-mixed-title", title=" \u200b\t\u00a0\u180e\u3164 ")), "empty_title"),
    (_line(_product("h-ctl-title", title="\u0000\u0001\u202e\u2066")), "empty_title"),
    (_line(_product("\u200b\u00a0 ")), "missing_product_id"),
    (b"[1, 2, 3]", "not_a_json_object"),
    (b"null", "not_a_json_object"),
    (b'{"product_id": "h-cut", "title": ', "unparseable_json"),
    # Valid products with hostile text: staged, text kept as data (never evaluated), controls removed.
    (_line(_product("h-bidi", title="\u202eEvil\u202c Tee\u0000 \u200bBlue", brand="Ac\u0000me\u2067",
                    description="Line one\u0000\u0007 and \u2066two\u2069\u200b")), None),
    (_line(_product("h-html", title=f"Tee {SCRIPT}", brand="<b onmouseover=alert(1)>Brand</b>",
                    description=f"{SCRIPT} <img src=x onerror=alert(1)> {TEMPLATE}",
                    merchant_attributes={SCRIPT: "<i>x</i>", "{{ 7*7 }}": TEMPLATE})), None),
    (_line(_product(f"<script>alert(1)</script>{{{{ 7*7 }}}}{{% raw %}}", title=TEMPLATE)), None),
    (_line(_product("h-crlf", title="CRLF Tee")) + b"\r", None),
    (_line(_product("h-cr-inside", title="Stray CR")).replace(b', "brand"', b',\r"brand"'), None),
]

# product id -> (image ref in the feed, expected image reject_reason)
HOSTILE_PHOTOS = {
    "p-truncated": ("images/p-truncated.jpg", "undecodable"),
    "p-not-image": ("images/p-not-image.jpg", "not_an_image"),
    "p-bomb": ("images/p-bomb.png", "decompression_bomb"),
    "p-empty": ("images/p-empty.jpg", "empty_file"),
    "p-directory": ("images/p-directory.jpg", "not_a_regular_file"),
    "p-symlink": ("images/p-symlink.jpg", "path_outside_catalog"),
    "p-absolute": ("/etc/passwd", "path_outside_catalog"),
    "p-dotdot": ("../outside.jpg", "path_outside_catalog"),
    "p-dotdot-nested": ("images/../../outside.jpg", "path_outside_catalog"),
    "p-file-url": ("file:///etc/passwd", "missing_file"),       # a relative name here: never leaves the catalog
    "p-http-url": ("http://127.0.0.1:9/x.jpg", "missing_file"),  # never fetched
    "p-nul": ("images/p\u0000.jpg", "path_outside_catalog"),
}


def _write_photos(catalog: Path) -> None:
    images = catalog / "images"
    good = io.BytesIO()
    Image.effect_noise((300, 300), 64).convert("RGB").save(good, "JPEG")
    (images / "p-truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (images / "p-not-image.jpg").write_text("<html><script>alert(1)</script></html>")
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")  # 100 Mpx in a few KB
    (images / "p-bomb.png").write_bytes(bomb.getvalue())
    (images / "p-empty.jpg").write_bytes(b"")
    (images / "p-directory.jpg").mkdir()
    outside = catalog.parent / "outside.jpg"
    outside.write_bytes(good.getvalue())  # a real photo, but outside the catalog
    os.symlink(outside, images / "p-symlink.jpg")


def build_hostile_catalog(real_catalog: Path, dest: Path) -> dict:
    """Write dest/products-{1,2,10}.jsonl.gz and dest/images; return what the pipeline should make of them."""
    import shutil

    (dest / "images").mkdir(parents=True)
    text_only, with_photo = real_products(real_catalog, TEXT_ONLY, WITH_PHOTO)
    for record in with_photo:
        shutil.copy(real_catalog / record["image"], dest / record["image"])
    _write_photos(dest)

    lines: list[bytes] = []
    expected_reason: dict[int, str | None] = {}  # 1-based line number -> reason (None: staged)
    valid_ids: set[str] = set()

    def add(payload: bytes, reason: str | None, product_id: str | None = None) -> None:
        lines.append(payload)
        expected_reason[len(lines)] = reason
        if reason is None:
            valid_ids.add(product_id)

    real = text_only + with_photo
    hostile = iter(HOSTILE_LINES)
    for i, record in enumerate(real):  # hostile lines and blank lines spread through the real ones
        # the first product is sent again, changed, at the end of the last shard: that line wins
        add(_line(record), "duplicate_id_conflicting" if i == 0 else None, record["product_id"])
        if i % 5 == 2:
            payload, reason = next(hostile, (None, None))
            if payload is not None:
                add(payload, reason, None if reason else json.loads(payload)["product_id"].strip())
        if i % 40 == 7:
            lines.append(b"" if i % 80 == 7 else b" \t ")
    for payload, reason in hostile:
        add(payload, reason, None if reason else json.loads(payload)["product_id"].strip())
    updated = dict(real[0], title=real[0]["title"] + " (updated)")
    add(_line(updated), None, updated["product_id"])
    winner_line = len(lines)
    for product_id, (ref, _) in HOSTILE_PHOTOS.items():
        add(_line(_product(product_id, image=ref)), None, product_id)
    lines.append(b"")

    cuts = [0, len(lines) // 3, 2 * len(lines) // 3, len(lines)]
    for shard, (start, end) in zip(SHARDS, zip(cuts, cuts[1:])):
        with gzip.open(dest / shard, "wb") as handle:
            handle.write(b"\n".join(lines[start:end]) + b"\n")
    return {"expected_reason": expected_reason, "valid_ids": valid_ids,
            "photo_ids": {r["product_id"] for r in with_photo},
            "winner": (updated["product_id"], updated["title"], winner_line)}


def _run(args, env) -> subprocess.CompletedProcess:
    started = time.monotonic()
    proc = subprocess.run([PINLANDING, *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                          timeout=900)
    proc.seconds = time.monotonic() - started
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, real_catalog):
    root = tmp_path_factory.mktemp("hostile")
    expected = build_hostile_catalog(real_catalog, root / "catalog")
    env = run_env(root)
    ingest = _run(["ingest"], env)
    build = _run(BUILD, env)
    os.environ.update(PINLANDING_DATA_DIR=env["PINLANDING_DATA_DIR"], PYSPARK_PYTHON=env["PYSPARK_PYTHON"])
    return {"root": root, "env": env, "expected": expected, "ingest": ingest, "build": build}


@pytest.fixture(scope="module")
def spark(hostile):
    from pinlanding.warehouse import spark_session, spark_settings

    spark_settings.cache_clear()
    session = spark_session("local")
    yield session
    # Static settings (this data dir's metastore) fix the session: later modules need their own.
    session.stop()


def _feed_lines(catalog: Path) -> list[bytes]:
    """The feed's lines, shard after shard, as Python's line iteration sees them (only \\n ends a line)."""
    lines = []
    for shard in SHARDS:
        with gzip.open(catalog / shard, "rb") as handle:
            lines += [line.rstrip(b"\r\n") for line in handle]
    return lines


def test_ingest_and_staging_survive_the_hostile_feed(hostile):
    assert "landed" in hostile["ingest"].stdout, hostile["ingest"].stdout
    print(f"ingest {hostile['ingest'].seconds:.0f}s, dbt build {hostile['build'].seconds:.0f}s")


def test_every_non_blank_line_is_staged_or_quarantined_with_a_reason(spark, hostile):
    lines = _feed_lines(hostile["root"] / "catalog")
    non_blank = {n for n, line in enumerate(lines, start=1) if line.strip()}
    staged = [r[0] for r in spark.table(f"{SCHEMA}.stg_products").select("source_line_number").collect()]
    quarantined = spark.table(f"{SCHEMA}.quarantine_products").select(
        "line_number", "reject_reason", "reject_detail").collect()
    assert len(staged) + len(quarantined) == len(non_blank)
    assert set(staged) | {r.line_number for r in quarantined} == non_blank
    assert not set(staged) & {r.line_number for r in quarantined}
    assert all(r.reject_reason and r.reject_detail for r in quarantined)

    summary = spark.table(f"{SCHEMA}.catalog_load_summary").collect()
    assert len(summary) == 1
    assert (summary[0].lines_landed, summary[0].products_staged, summary[0].lines_quarantined) == (
        len(non_blank), len(staged), len(quarantined))
    load = spark.table(f"{SCHEMA}_raw.raw_feed_loads").collect()
    assert [(r.lines_read, r.blank_lines) for r in load] == [(len(lines), len(lines) - len(non_blank))]


def test_no_valid_product_is_lost(spark, hostile):
    ids = {r[0] for r in spark.table(f"{SCHEMA}.stg_products").select("product_id").collect()}
    assert ids == hostile["expected"]["valid_ids"]


def test_the_last_line_of_an_id_wins_across_shards(spark, hostile):
    product_id, title, line_number = hostile["expected"]["winner"]
    staged = spark.table(f"{SCHEMA}.stg_products").where(f"product_id = '{product_id}'").collect()
    assert [(r.title, r.source_line_number) for r in staged] == [(title, line_number)]
    sources = {r._line_number: Path(r._source_file).name for r in
               spark.table(f"{SCHEMA}_raw.raw_products").where(f"product_id = '{product_id}'").collect()}
    assert sources == {1: SHARDS[0], line_number: SHARDS[-1]}


def test_each_hostile_line_gets_its_reason(spark, hostile):
    got = {r.line_number: r.reject_reason
           for r in spark.table(f"{SCHEMA}.quarantine_products").select("line_number", "reject_reason").collect()}
    expected = {n: reason for n, reason in hostile["expected"]["expected_reason"].items() if reason}
    assert got == expected
    assert set(got.values()) == {reason for _, reason in HOSTILE_LINES if reason} | {"duplicate_id_conflicting"}


def test_raw_rows_keep_the_evidence(spark, hostile):
    rows = {r._line_number: r for r in spark.table(f"{SCHEMA}_raw.raw_products").collect()}
    by_reason = {}
    for number, reason in hostile["expected"]["expected_reason"].items():
        by_reason.setdefault(reason, []).append(rows[number])
    huge = by_reason["line_too_large"][0]
    assert huge._line_bytes > 1 << 20 and len(huge._raw_line.encode()) <= 16_384
    assert "\ufffd" in by_reason["invalid_utf8"][0]._raw_line
    deep = next(r for r in by_reason["unparseable_json"] if "h-deep" in r._raw_line)
    assert "1000" in deep._load_error_detail and len(deep._raw_line) == 16_384
    assert all(r._type_errors for r in by_reason["invalid_field_type"])


def test_hostile_text_is_kept_as_data_and_cleaned_of_controls(spark, hostile):
    products = {r.product_id: r for r in spark.table(f"{SCHEMA}.stg_products").collect()}
    bidi = products["h-bidi"]
    assert (bidi.title, bidi.brand) == ("Evil Tee \u200bBlue", "Acme")
    assert bidi.description == "Line one and two"
    for p in products.values():
        for text in (p.title, p.brand, p.description):
            assert not any(unicodedata.category(c) == "Cc" or 0x202A <= ord(c) <= 0x202E
                           or 0x2066 <= ord(c) <= 0x2069 for c in text or ""), (p.product_id, text)
    html = products["h-html"]
    assert html.title == f"Tee {SCRIPT}" and TEMPLATE in html.description and SCRIPT in html.description
    assert html.merchant_attributes == {SCRIPT: "<i>x</i>", "{{ 7*7 }}": TEMPLATE}
    templated = products["<script>alert(1)</script>{{ 7*7 }}{% raw %}"]
    assert templated.title == TEMPLATE and "49" not in templated.title
    assert products["h-crlf"].title == "CRLF Tee" and products["h-cr-inside"].title == "Stray CR"


def test_bad_photos_are_rejected_and_their_products_stay_text_only(spark, hostile):
    reasons = {r.product_id: r.reject_reason
               for r in spark.table(f"{SCHEMA}.quarantine_product_images").collect()}
    assert reasons == {pid: reason for pid, (_, reason) in HOSTILE_PHOTOS.items()}
    status = {r.product_id: (r.image_status, r.image_path) for r in spark.table(f"{SCHEMA}.int_products").collect()}
    for product_id in HOSTILE_PHOTOS:
        assert status[product_id] == ("rejected", None), product_id
    valid = {pid for pid, (s, _) in status.items() if s == "valid"}
    assert valid == hostile["expected"]["photo_ids"]


def test_every_line_accounted_for_fails_when_a_line_goes_missing(spark, hostile, monkeypatch):
    """The dbt test compares the file's line count with the staged + quarantined rows: drop one
    landed row behind staging's back and it must fail. (Runs last: it changes the warehouse.)"""
    from dbt.cli.main import dbtRunner

    for name in ("DBT_TARGET_PATH", "DBT_LOG_PATH"):  # not the project's target/ (shared checkout)
        monkeypatch.setenv(name, hostile["env"][name])
    project = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)]
    raw = f"{SCHEMA}_raw.raw_products"
    first = spark.table(raw).agg({"_line_number": "min"}).first()[0]
    spark.table(raw).where(f"_line_number != {first}").write.mode("overwrite").saveAsTable(f"{raw}_short")
    spark.sql(f"alter table {raw} rename to {raw}_full")
    spark.sql(f"alter table {raw}_short rename to {raw}")
    rebuilt = dbtRunner().invoke(["run", "--select", "stg_catalog__product_lines", "stg_products",
                                  "quarantine_products", "catalog_load_summary", *project])
    assert rebuilt.success
    tested = dbtRunner().invoke(["test", "--select", "catalog_load_summary", *project])
    status = {r.node.name: str(r.status) for r in tested.result.results}
    failed = {name for name, s in status.items() if s == "fail"}
    assert failed == {n for n in status if n.startswith("every_line_accounted_for")}, status
    assert len(failed) == 1
