"""The publisher's pieces without a browser: mart reading, URL safety, formatting, related
collections and breadcrumbs, sitemaps, redirect maps, images, incremental bookkeeping."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pinlanding import marts, publish
from pinlanding.publish import (CollectionEntry, breadcrumb_trail, describe, format_price, is_safe_url_path,
                                nginx_redirect_map, netlify_redirects, publish_site, redirect_pairs,
                                related_collections, write_sitemaps)


def entry(cid, attrs, status="published", count=10, url=None, canonical=None):
    url = url or f"/c/{cid}/"
    return CollectionEntry(collection_id=cid, title=cid.title(), url_path=url, status=status,
                           canonical_url_path=canonical or url, attribute_ids=list(attrs),
                           attribute_types=["t"] * len(attrs), attribute_values=list(attrs),
                           product_count=count, content_hash="h", content_changed_at=None)


# ----------------------------------------------------------------------------- marts


def test_read_mart_reads_part_files_and_skips_spark_markers(tmp_path, monkeypatch):
    monkeypatch.setenv("PINLANDING_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PINLANDING_SCHEMA", "shop")
    table_dir = marts.warehouse_table_path("collections")
    assert table_dir == tmp_path / "warehouse" / "shop.db" / "collections"
    table_dir.mkdir(parents=True)
    pq.write_table(pa.table({"collection_id": ["a", "b"], "attribute_ids": [["x"], ["x", "y"]]}),
                   table_dir / "part-00000.snappy.parquet")
    pq.write_table(pa.table({"collection_id": ["c"], "attribute_ids": [["z"]]}), table_dir / "part-00001.snappy.parquet")
    (table_dir / "_SUCCESS").write_bytes(b"")
    (table_dir / ".part-00000.snappy.parquet.crc").write_bytes(b"not parquet")
    (table_dir / "_temporary").mkdir()
    (table_dir / "_temporary" / "junk").write_bytes(b"not parquet")
    frame = marts.read_mart("collections").sort_values("collection_id")
    assert frame["collection_id"].tolist() == ["a", "b", "c"]
    assert [list(v) for v in frame["attribute_ids"]] == [["x"], ["x", "y"], ["z"]]
    assert marts.read_mart("collections", columns=["collection_id"]).columns.tolist() == ["collection_id"]
    with pytest.raises(marts.MartNotFoundError, match="collection_feeds"):
        marts.read_mart("collection_feeds")


def test_load_marts_rejects_a_table_missing_contract_columns():
    tables = {"collections": pd.DataFrame({"collection_id": []}), "collection_feeds": pd.DataFrame(),
              "collection_redirects": pd.DataFrame()}
    with pytest.raises(KeyError, match="collections lacks contract columns"):
        publish.load_marts(tables)


# ----------------------------------------------------------------------------- URLs and text


@pytest.mark.parametrize("path, ok", [
    ("/c/red-shirts-1a2b3c/", True), ("/c/a/b/", True),
    ("/", False), ("/c/red", False), ("c/red/", False), ("/c/../etc/", False), ("/c/./x/", False),
    ("/c//x/", False), ("/c/red shirts/", False), ("/img/x/", False), ("/c/<x>/", False), (None, False),
    ("/c/r\u00e9d/", False), ("/page/2/", False),
])
def test_only_safe_site_relative_directory_urls_are_accepted(path, ok):
    assert is_safe_url_path(path) is ok


def test_prices_format_for_display_and_schema_org():
    assert format_price(1299, "INR") == ("\u20b91,299", "1299")
    assert format_price(12.5, "USD") == ("$12.50", "12.50")
    assert format_price(7, "CHF") == ("7 CHF", "7")
    assert format_price(None, "INR") == (None, None)
    assert format_price(float("nan"), "INR") == (None, None)


def test_meta_description_names_size_brands_and_price_range_and_stays_short():
    text = describe("Navy Shirts", 3, ["Nike", "Puma"], (499, 999), "INR")
    assert text == "Shop Navy Shirts: 3 products from Nike and Puma, \u20b9499 to \u20b9999."
    long = describe("A " * 100, 1, [], (None, None), "INR")
    assert len(long) <= 160 and long.endswith("\u2026")


# ----------------------------------------------------------------------------- related and breadcrumbs


def test_related_collections_rank_by_shared_attributes_then_size():
    entries = [entry("ab", ["a", "b"]), entry("a", ["a"], count=50), entry("abc", ["a", "b", "c"], count=5),
               entry("b", ["b"], count=40), entry("z", ["z"]), entry("held", ["a", "b"], status="held_back")]
    related = related_collections([e for e in entries if e.status != "held_back"])
    assert [e.collection_id for e in related["ab"]] == ["abc", "a", "b"]
    assert related["z"] == []


def test_a_duplicate_lists_its_canonical_collection_first():
    canonical = entry("a", ["a"], count=1)
    duplicate = entry("dup", ["a", "b"], status="duplicate", canonical=canonical.url_path)
    others = [entry("ab", ["a", "b"], count=99)]
    related = related_collections([canonical, duplicate, *others])
    assert [e.collection_id for e in related["dup"]] == ["a", "ab"]


def test_breadcrumbs_climb_through_published_attribute_subsets():
    entries = [entry("a", ["a"]), entry("b", ["b"], count=99), entry("ab", ["a", "b"]),
               entry("abc", ["a", "b", "c"]), entry("c", ["c"], status="duplicate")]
    trails = breadcrumb_trail(entries)
    assert [e.collection_id for e in trails["abc"]] == ["b", "ab"]
    assert [e.collection_id for e in trails["ab"]] == ["b"]
    assert trails["a"] == []


# ----------------------------------------------------------------------------- sitemaps, robots, redirects


def test_sitemaps_split_at_the_limit_and_the_index_carries_each_files_latest_lastmod(tmp_path):
    urls = [(f"https://shop.example/c/{i}/?a=1&b=2", f"2026-01-{i % 28 + 1:02d}T00:00:00+00:00") for i in range(25)]
    result = write_sitemaps(urls, tmp_path, "https://shop.example", max_urls=10)
    assert result["files"] == ["sitemap-1.xml.gz", "sitemap-2.xml.gz", "sitemap-3.xml.gz"] and result["urls"] == 25
    first = gzip.decompress((tmp_path / "sitemap-1.xml.gz").read_bytes()).decode()
    assert first.count("<url>") == 10 and "&amp;b=2" in first
    index = gzip.decompress((tmp_path / "sitemap_index.xml.gz").read_bytes()).decode()
    assert "<loc>https://shop.example/sitemap-2.xml.gz</loc><lastmod>2026-01-20T00:00:00+00:00</lastmod>" in index

    # Same content: nothing rewritten. Fewer URLs: stale files go.
    assert write_sitemaps(urls, tmp_path, "https://shop.example", max_urls=10)["written"] == 0
    write_sitemaps(urls[:5], tmp_path, "https://shop.example", max_urls=10)
    assert sorted(p.name for p in tmp_path.glob("sitemap-*")) == ["sitemap-1.xml.gz"]


def test_redirect_pairs_drop_unusable_rows_and_both_formats_list_the_rest():
    frame = pd.DataFrame({
        "from_url_path": ["/c/old/", "/c/same/", "/c/sp ace/", "nope/", None, "/c/gone/"],
        "to_url_path": ["/c/new/", "/c/same/", "/c/x/", "/c/x/", "/c/x/", "/"],
        "reason": ["renamed", "merged", "removed", "removed", "removed", "removed"]})
    pairs = redirect_pairs(frame, "")
    assert pairs == [("/c/gone/", "/"), ("/c/old/", "/c/new/")]
    assert redirect_pairs(frame, "/shop")[0] == ("/shop/c/gone/", "/shop/")
    assert netlify_redirects(pairs).splitlines()[1:] == ["/c/gone/ / 301", "/c/old/ /c/new/ 301"]
    nginx = nginx_redirect_map(pairs)
    assert 'map $uri $pinlanding_redirect {\n    default "";\n    "/c/gone/" "/";\n    "/c/old/" "/c/new/";\n}\n' in nginx


# ----------------------------------------------------------------------------- publish_site


@pytest.fixture()
def photos(tmp_path):
    root = tmp_path / "catalog" / "images"
    root.mkdir(parents=True)
    for name, colour in (("1.jpg", "red"), ("2.jpg", "blue")):
        Image.new("RGB", (40, 30), colour).save(root / name, "JPEG")
    outside = tmp_path / "outside.jpg"
    Image.new("RGB", (40, 30), "green").save(outside, "JPEG")
    return root, outside


def small_marts(photos, n_products=5):
    root, outside = photos
    collections = pd.DataFrame([
        {"collection_id": "col_a", "attribute_ids": ["a"], "attribute_types": ["colour"], "attribute_values": ["Red"],
         "product_count": n_products, "title": "Red & <b>Bold</b>", "url_path": "/c/red-a/", "status": "published",
         "canonical_collection_id": "col_a", "canonical_url_path": "/c/red-a/", "feed_size": n_products,
         "content_hash": "h1", "content_changed_at": pd.Timestamp("2026-03-01 10:00:00")},
        {"collection_id": "col_b", "attribute_ids": ["a", "b"], "attribute_types": ["colour", "fit"],
         "attribute_values": ["Red", "Slim"], "product_count": 2, "title": "Red Slim", "url_path": "/c/red-slim-b/",
         "status": "duplicate", "canonical_collection_id": "col_a", "canonical_url_path": "/c/red-a/", "feed_size": 2,
         "content_hash": "h2", "content_changed_at": pd.Timestamp("2026-03-02 10:00:00")},
        {"collection_id": "col_c", "attribute_ids": ["c"], "attribute_types": ["fit"], "attribute_values": ["x"],
         "product_count": 2, "title": None, "url_path": None, "status": "held_back", "canonical_collection_id": None,
         "canonical_url_path": None, "feed_size": 0, "content_hash": None, "content_changed_at": pd.NaT},
        {"collection_id": "col_d", "attribute_ids": ["d"], "attribute_types": ["fit"], "attribute_values": ["y"],
         "product_count": 2, "title": "Escaper", "url_path": "/c/../../etc/", "status": "published",
         "canonical_collection_id": "col_d", "canonical_url_path": "/c/../../etc/", "feed_size": 0,
         "content_hash": "h4", "content_changed_at": pd.NaT},
    ])
    feed = []
    for cid, n in (("col_a", n_products), ("col_b", 2)):
        for i in range(1, n + 1):
            image = {1: root / "1.jpg", 2: root / "2.jpg", 3: outside}.get(i)
            feed.append({"collection_id": cid, "position": i, "product_id": f"p{i}", "match_type": "full",
                         "matched_attributes": 1, "mean_score": 0.9,
                         "evidence": [{"attribute_id": "a", "attribute_type": "colour", "value": "Red", "score": 0.9}],
                         "product_title": f"Product {i} <i>", "brand": "B&B", "price": 100.0 * i,
                         "image_path": str(image) if image else None, "image_sha256": None,  # hashed by the publisher
                         "image_width": 40, "image_height": 30,
                         "variant_count": 3 if (cid, i) == ("col_a", 2) else 1})
    redirects = pd.DataFrame({"from_url_path": ["/c/old-a/"], "to_url_path": ["/c/red-a/"], "reason": ["renamed"]})
    return {"collections": collections, "collection_feeds": pd.DataFrame(feed), "collection_redirects": redirects}


def test_publish_writes_pages_assets_and_maps(tmp_path, photos):
    root, _ = photos
    out = tmp_path / "site"
    stats = publish_site(small_marts(photos), out, "https://shop.example/", 2, image_root=root.parent)
    assert stats["collections_skipped"] == {"unsafe_url_path": 1}
    assert not (tmp_path / "etc").exists()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html")) == [
        "404.html", "c/red-a/index.html", "c/red-a/page/2/index.html", "c/red-a/page/3/index.html",
        "c/red-slim-b/index.html", "index.html"]
    page = (out / "c/red-a/index.html").read_text()
    assert "<h1>Red &amp; &lt;b&gt;Bold&lt;/b&gt;</h1>" in page
    assert '<link rel="canonical" href="https://shop.example/c/red-a/">' in page
    assert '<link rel="next" href="/c/red-a/page/2/">' in page
    assert "Product 1 &lt;i&gt;" in page and "<i>" not in page
    # product 2's card carries two near-identical products (variant_count 3); product 1's none
    assert page.count('class="variants"') == 1 and '<p class="variants" data-variants="2">+2 similar items</p>' in page
    jsonld = json.loads(page.split('<script type="application/ld+json">')[1].split("</script>")[0])
    assert jsonld["mainEntity"]["numberOfItems"] == 2
    assert jsonld["mainEntity"]["itemListElement"][1]["item"]["offers"] == {
        "@type": "Offer", "price": "200", "priceCurrency": "INR", "url": "https://shop.example/c/red-a/"}
    page3 = (out / "c/red-a/page/3/index.html").read_text()
    assert '<link rel="canonical" href="https://shop.example/c/red-a/page/3/">' in page3
    assert 'class="no-photo"' in page3  # photo outside the catalog is not published
    duplicate = (out / "c/red-slim-b/index.html").read_text()
    assert '<link rel="canonical" href="https://shop.example/c/red-a/">' in duplicate
    related = duplicate.split('id="related-heading"')[1]
    assert '<li><a href="/c/red-a/">Red &amp; &lt;b&gt;Bold&lt;/b&gt;</a> <span class="shared">(shares Red)</span></li>' in related
    # Photos: content-addressed copies or links of the two catalog photos.
    assert stats["images"] == 2 and stats["images_skipped"] == 1
    assert sorted(p.stat().st_size for p in (out / "img").iterdir()) == sorted(
        p.stat().st_size for p in root.iterdir())
    # Only published pages (and home) in the sitemap.
    sitemap = gzip.decompress((out / "sitemap-1.xml.gz").read_bytes()).decode()
    assert "red-a" in sitemap and "red-slim-b" not in sitemap
    assert "<lastmod>2026-03-01T10:00:00+00:00</lastmod>" in sitemap
    assert (out / "robots.txt").read_text().endswith("Sitemap: https://shop.example/sitemap_index.xml.gz\n")
    assert "/c/old-a/ /c/red-a/ 301" in (out / "_redirects").read_text()


def test_a_base_url_with_a_path_prefixes_every_site_link(tmp_path, photos):
    out = tmp_path / "site"
    publish_site(small_marts(photos), out, "https://shop.example/outlet", 48, image_root=photos[0].parent)
    page = (out / "c/red-a/index.html").read_text()
    assert '<link rel="canonical" href="https://shop.example/outlet/c/red-a/">' in page
    assert 'src="/outlet/img/' in page and 'href="/outlet/"' in page


def test_republish_removes_dropped_pages_and_orphaned_photos(tmp_path, photos):
    out = tmp_path / "site"
    publish_site(small_marts(photos), out, "https://shop.example", 2, image_root=photos[0].parent)
    smaller = small_marts(photos, n_products=1)
    stats = publish_site(smaller, out, "https://shop.example", 2, image_root=photos[0].parent)
    assert stats["pages_removed"] == 2 and not (out / "c/red-a/page").exists()
    assert stats["images_removed"] == 0  # photo 2 is still in col_b
    smaller["collection_feeds"] = smaller["collection_feeds"][smaller["collection_feeds"]["product_id"] == "p1"]
    stats = publish_site(smaller, out, "https://shop.example", 2, image_root=photos[0].parent)
    assert stats["images_removed"] == 1 and len(list((out / "img").iterdir())) == 1


def test_full_rewrites_every_page_and_settings_come_from_the_environment(tmp_path, photos, monkeypatch):
    monkeypatch.setenv("PINLANDING_SITE_DIR", str(tmp_path / "env-site"))
    monkeypatch.setenv("PINLANDING_SITE_BASE_URL", "https://env.example")
    monkeypatch.setenv("PINLANDING_SITE_PAGE_SIZE", "1")
    stats = publish_site(small_marts(photos), image_root=photos[0].parent)
    assert stats["out_dir"] == str(tmp_path / "env-site") and stats["page_size"] == 1
    assert stats["base_url"] == "https://env.example" and stats["collection_pages"] == 2
    assert publish_site(small_marts(photos), image_root=photos[0].parent)["pages_written"] == 0
    again = publish_site(small_marts(photos), image_root=photos[0].parent, full=True)
    assert again["pages_written"] == again["pages_total"]
    # A flag beats the environment, and a changed base URL changes every page.
    moved = publish_site(small_marts(photos), base_url="https://moved.example", image_root=photos[0].parent)
    assert moved["pages_written"] == moved["pages_total"]
    with pytest.raises(ValueError):
        publish_site(small_marts(photos), base_url="shop.example", image_root=photos[0].parent)


def test_preview_serves_files_redirects_and_404_on_loopback_only(tmp_path, photos):
    import threading
    import urllib.error
    import urllib.request

    from pinlanding.preview import make_server

    out = tmp_path / "site"
    publish_site(small_marts(photos), out, "http://127.0.0.1:8000", 48, image_root=photos[0].parent)
    server = make_server(out, 0)
    assert server.server_address[0] == "127.0.0.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        assert b"<h1>Red &amp;" in opener.open(base + "/c/red-a/").read()
        with pytest.raises(urllib.error.HTTPError) as moved:
            opener.open(base + "/c/old-a/")
        assert (moved.value.code, moved.value.headers["Location"]) == (301, "/c/red-a/")
        with pytest.raises(urllib.error.HTTPError) as missing:
            opener.open(base + "/nothing/")
        assert missing.value.code == 404 and b"Page not found" in missing.value.read()
    finally:
        server.shutdown()
        server.server_close()
