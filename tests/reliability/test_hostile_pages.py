"""Hostile merchant text renders inert in real headless Chromium, in every field a page shows or embeds.

Marts are built from 160 real catalog products (tests/browser/site_marts.py); six products of the most
common article type get hostile text in their title, brand, description and product id, and share a
hostile colour value, so collections are built from it and its title reaches <title>, meta/og tags,
the H1, the breadcrumb, related links, the home page and every card's evidence. The site is published
by pinlanding.publish, served on loopback and every page carrying a hostile product (and page 1 of
each of its collections, and home) is opened in Debian's headless Chromium.

What the publisher does with control characters: C0/C1 controls (NUL above all) are dropped from
everything written as HTML text or attribute values: a raw NUL is an HTML parse error that browsers
turn into U+FFFD in attributes and drop in text, so the page would show something else than the data
(and validators reject it). JSON-LD keeps the value verbatim (JSON escapes it as \\u0000). Bidi
overrides and zero-width characters are valid text: they are kept verbatim everywhere.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from html.parser import HTMLParser

import pytest

from tests.browser.conftest import PAGE_SIZE, chromium, data_dir_env, free_loopback_port  # noqa: F401
from tests.browser.site_marts import build_marts, read_catalog_products, write_warehouse

BIDI, ZWSP, BOM, NUL = "\u202e", "\u200b", "\ufeff", "\x00"
PAYLOADS = [
    "</script><script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    '"><svg onload=alert(3)>',
    "' onmouseover='alert(4)",
    "{{ 7*7 }} {% raw %}x{% endraw %} ${7*7}",
    f"{BIDI}evil{ZWSP}zero{BOM}width",
]
# Shared by all six hostile products: collections are built from it, so their titles carry it.
HOSTILE_COLOUR = f'"><svg onload=alert(3)> </script><script>alert(1)</script> {{{{ 7*7 }}}} {BIDI}Red{ZWSP}{NUL}'
N_HOSTILE = len(PAYLOADS)
CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """What a page shows for `text` as HTML text or attribute value (controls dropped)."""
    return CONTROL.sub("", text)


def collapsed(text: str) -> str:
    """document.title strips and collapses ASCII whitespace."""
    return " ".join(re.split(r"[\t\n\f\r ]+", text)).strip()


def hostile_product(i: int) -> dict:
    payload = PAYLOADS[i]
    return {
        "title": f"{payload} & title {i}",
        "brand": f"{PAYLOADS[(i + 1) % N_HOSTILE]} brand",
        "description": f"{payload} description {i}",
        # ids may still carry bidi/NUL (staging strips them from title/brand/description only)
        "product_id": f"{payload}#{i}" + (f"{BIDI}{NUL}{ZWSP}{BOM}" if i == N_HOSTILE - 1 else ""),
    }


@pytest.fixture(scope="module")
def hostile_marts(real_catalog):
    products = read_catalog_products(real_catalog, limit=160)
    common = Counter(p["article_type"] for p in products).most_common(1)[0][0]
    targets = [p for p in products if p["article_type"] == common][:N_HOSTILE]
    assert len(targets) == N_HOSTILE
    hostile = {}
    for i, product in enumerate(targets):
        product.update(hostile_product(i))
        product["base_colour"] = HOSTILE_COLOUR
        hostile[product["product_id"]] = dict(product)
    assert len({p["product_id"] for p in products}) == len(products)
    return build_marts(products), hostile


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory, hostile_marts):
    from pinlanding.preview import make_server
    from pinlanding.publish import publish_site

    marts, hostile = hostile_marts
    data_dir = tmp_path_factory.mktemp("hostile-data")
    write_warehouse(data_dir, marts)
    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    out_dir = data_dir / "site"
    with data_dir_env(data_dir):
        stats = publish_site(out_dir=out_dir, base_url=base_url, page_size=PAGE_SIZE)
    server = make_server(out_dir, port)
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield out_dir, base_url, stats
    server.shutdown()
    server.server_close()


def pages_to_open(marts, hostile) -> list[dict]:
    """Every collection page that carries a hostile product, plus page 1 of each such collection."""
    collections = marts["collections"].set_index("collection_id")
    feeds = marts["collection_feeds"].sort_values(["collection_id", "position"])
    pages = {}
    for collection_id, feed in feeds.groupby("collection_id"):
        row = collections.loc[collection_id]
        if row["status"] not in ("published", "duplicate"):
            continue
        positions = feed.loc[feed["product_id"].isin(hostile), "position"]
        if positions.empty:
            continue
        n_pages = max(1, math.ceil(len(feed) / PAGE_SIZE))
        for page in {1, *((positions - 1) // PAGE_SIZE + 1).tolist()}:
            path = row["url_path"] if page == 1 else f"{row['url_path']}page/{page}/"
            pages[path] = {"path": path, "page": page, "pages": n_pages, "collection": row,
                           "feed": feed.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]}
    return [pages[p] for p in sorted(pages)]


class CardCounter(HTMLParser):
    """A second, independent HTML parse: product cards and script elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cards, self.scripts = 0, 0

    def handle_starttag(self, tag, attrs):
        if tag == "li" and "product" in (dict(attrs).get("class") or "").split():
            self.cards += 1
        if tag == "script":
            self.scripts += 1


ALERT_HOOK = "window.__alerts = []; for (const f of ['alert', 'confirm', 'prompt']) " \
             "{ window[f] = (m) => { window.__alerts.push(f + ':' + m); }; }"

INSPECT = """
const attrs = [];
for (const el of document.querySelectorAll('*')) {
  for (const a of el.attributes) { if (a.name.toLowerCase().startsWith('on')) attrs.push(el.tagName + '@' + a.name); }
}
const ld = document.querySelector('script[type="application/ld+json"]');
const meta = (sel) => { const m = document.querySelector(sel); return m ? m.getAttribute('content') : null; };
return {
  alerts: window.__alerts || [],
  scripts: Array.from(document.querySelectorAll('script')).map(s => s.getAttribute('type')),
  jsonld: ld ? JSON.parse(ld.textContent) : null,
  title: document.title,
  description: meta('meta[name=description]'),
  og_title: meta('meta[property="og:title"]'),
  og_description: meta('meta[property="og:description"]'),
  on_attrs: attrs,
  foreign_imgs: Array.from(document.querySelectorAll('img')).map(i => i.getAttribute('src'))
      .filter(s => !(s || '').startsWith('/img/')),
  active: document.querySelectorAll('svg, iframe, object, embed, frame, base, form').length,
  h1: (document.querySelector('h1') || {}).textContent,
  crumbs: Array.from(document.querySelectorAll('nav.breadcrumb li')).map(l => l.textContent),
  attributes: Array.from(document.querySelectorAll('ul.attributes li')).map(l => l.textContent),
  related: Array.from(document.querySelectorAll('.related li a')).map(a => a.textContent),
  home_links: Array.from(document.querySelectorAll('ul.collections a')).map(a => a.textContent),
  footer: !!document.querySelector('body > footer.site'),
  cards: Array.from(document.querySelectorAll('main li.product')).map(li => ({
    id: li.getAttribute('data-product-id'),
    h3: (li.querySelector('h3') || {}).textContent,
    brand: (li.querySelector('.brand') || {}).textContent || null,
    alt: li.querySelector('img') ? li.querySelector('img').getAttribute('alt') : null,
    evidence: Array.from(li.querySelectorAll('details li')).map(e => e.textContent),
  })),
};
"""

RAW_FORBIDDEN = ("<script>alert", "<img src=x", "<svg")


def open_page(driver, url: str) -> dict:
    from selenium.common.exceptions import NoAlertPresentException

    driver.get(url)
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text
    return driver.execute_script(INSPECT)


def check_common(got: dict, url: str, raw: str) -> None:
    assert got["alerts"] == [], url
    assert got["on_attrs"] == [], url
    assert got["foreign_imgs"] == [], url
    assert got["active"] == 0, url
    assert got["footer"], f"{url}: document structure broken (no footer after main)"
    assert NUL not in raw, f"{url}: raw NUL in the HTML (a parse error; the DOM would differ from the data)"
    lowered = raw.lower()
    for bad in RAW_FORBIDDEN:
        assert bad not in lowered, f"{url}: unescaped {bad!r} in the HTML"


def test_hostile_text_is_inert_on_every_page(hostile_site, hostile_marts, chromium):  # noqa: F811
    out_dir, base_url, stats = hostile_site
    marts, hostile = hostile_marts
    chromium.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ALERT_HOOK})
    pages = pages_to_open(marts, hostile)
    titles = marts["collections"].set_index("collection_id")["title"]
    hostile_collections = [p for p in pages if HOSTILE_COLOUR in p["collection"]["title"]]
    assert len(pages) >= 3 and hostile_collections, "the fixture must put hostile text on several pages"
    published_titles = set(marts["collections"].query("status == 'published'")["title"].map(shown))
    seen_hostile = set()

    for want in pages:
        url = base_url + want["path"]
        raw = (out_dir / want["path"].lstrip("/") / "index.html").read_text(encoding="utf-8")
        got = open_page(chromium, url)
        check_common(got, url, raw)
        collection, feed = want["collection"], want["feed"]
        title = collection["title"]
        page_title = title if want["page"] == 1 else f"{title} \u2013 page {want['page']} of {want['pages']}"

        # the only script is the JSON-LD block, and it parses with the hostile text verbatim
        assert got["scripts"] == ["application/ld+json"], url
        assert raw.lower().count("<script") == 1, url
        data = got["jsonld"]
        assert data["name"] == page_title, url
        assert [c["name"] for c in data["breadcrumb"]["itemListElement"]][-1] == title, url
        items = data["mainEntity"]["itemListElement"]
        assert [i["item"]["sku"] for i in items] == feed["product_id"].tolist(), url
        for item, (_, row) in zip(items, feed.iterrows()):
            assert item["item"]["name"] == row["product_title"], url
            if row["product_id"] in hostile:
                source = hostile[row["product_id"]]
                assert item["item"]["name"] == source["title"] and item["item"]["brand"]["name"] == source["brand"]
                assert item["item"]["sku"] == source["product_id"]

        # <title>, meta description and Open Graph carry the hostile text as text
        assert collapsed(shown(page_title)) in got["title"], url
        assert got["og_title"] == shown(page_title), url
        if want["page"] == 1:
            assert got["description"].startswith(f"Shop {shown(title)}:"), url
            assert got["og_description"] == got["description"], url
        assert got["h1"] == shown(title), url
        assert got["crumbs"][-1] == shown(title) and got["crumbs"][0] == "Home", url
        for crumb in got["crumbs"][1:]:
            assert crumb in published_titles or crumb == shown(title), url
        for link in got["related"]:
            assert link in published_titles, f"{url}: related link {link!r}"
        hostile_colour_here = HOSTILE_COLOUR in list(collection["attribute_values"])
        if hostile_colour_here:
            assert f"colour: {shown(HOSTILE_COLOUR)}" in got["attributes"], url

        # the cards: as many as the feed slice, ids/titles/brands/alt exactly the data's (shown)
        assert len(got["cards"]) == len(feed) > 0, url
        parser = CardCounter()
        parser.feed(raw)
        parser.close()
        assert parser.cards == len(feed) and parser.scripts == 1, url
        for card, (_, row) in zip(got["cards"], feed.iterrows()):
            assert card["id"] == shown(row["product_id"]), url
            assert card["h3"] == shown(row["product_title"]), url
            if row["product_id"] in hostile:
                seen_hostile.add(row["product_id"])
                source = hostile[row["product_id"]]
                assert card["brand"] == shown(source["brand"]) and card["alt"] == shown(source["title"]), url
                assert "49" not in card["h3"] + card["brand"], url  # template syntax never evaluated
                if hostile_colour_here:
                    assert any(e.startswith(f"colour: {shown(HOSTILE_COLOUR)} (score") for e in card["evidence"]), url
                if source["product_id"] != shown(source["product_id"]):
                    assert NUL not in card["id"] and "\ufffd" not in card["id"], url
        # product descriptions are neither rendered nor embedded
        assert not any(f"description {i}" in raw for i in range(N_HOSTILE)), url

    assert seen_hostile == set(hostile), "every hostile product must be seen on some page"

    # home: every published collection title, as text, and nothing active
    raw = (out_dir / "index.html").read_text(encoding="utf-8")
    got = open_page(chromium, base_url + "/")
    check_common(got, base_url + "/", raw)
    assert got["scripts"] == [] and "<script" not in raw.lower()
    assert shown(titles[titles.str.contains(HOSTILE_COLOUR, regex=False)].iloc[0]) in got["home_links"]
    assert set(got["home_links"]) == published_titles
