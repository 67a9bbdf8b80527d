"""Page rendering: formatting, the Jinja environment, each page's render context and JSON-LD."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from pinlanding.publish.inputs import _as_list, _none_if_na
from pinlanding.publish.photos import ImageStore

# Bump when the renderer's output changes in a way the templates' own hash does not capture.
RENDER_VERSION = "2"  # 2: control characters dropped from HTML text
SITE_NAME = "PinLanding"
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
EAGER_IMAGES = 8  # above the fold: load at once; the rest lazily
CURRENCY_SYMBOLS = {"INR": "\u20b9", "USD": "$", "EUR": "\u20ac", "GBP": "\u00a3"}


def format_price(price, currency: str) -> tuple[str | None, str | None]:
    """(display text, schema.org price string); (None, None) when there is no price."""
    price = _none_if_na(price)
    if price is None:
        return None, None
    amount = Decimal(str(price))
    exact = amount == amount.to_integral_value()
    schema_price = str(amount.quantize(Decimal(1))) if exact else f"{amount:.2f}"
    shown = f"{amount:,.0f}" if exact else f"{amount:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return (f"{symbol}{shown}" if symbol else f"{shown} {currency}"), schema_price


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:- ")
    return cut + "\u2026"


def describe(title: str, n_products: int, brands: list[str], price_range: tuple, currency: str) -> str:
    """Meta description from the collection's data: size, leading brands, price range."""
    text = f"Shop {title}: {n_products} product{'s' if n_products != 1 else ''}"
    if brands:
        shown = brands[:3]
        text += " from " + (", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0])
    low, high = price_range
    if low is not None:
        low_text = format_price(low, currency)[0]
        text += f", {low_text}" if low == high else f", {low_text} to {format_price(high, currency)[0]}"
    return truncate(text + ".", 160)


# C0/C1 control characters (NUL above all) are HTML parse errors: browsers turn a NUL into U+FFFD
# in attributes and drop it from text, so the page would disagree with the data. Dropped from
# every value written into HTML; JSON-LD (|tojson) already writes them as \u escapes.
HTML_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def _html_safe_text(value):
    if isinstance(value, str) and HTML_CONTROL_CHARS.search(value):
        cleaned = HTML_CONTROL_CHARS.sub("", value)
        return Markup(cleaned) if isinstance(value, Markup) else cleaned
    return value


def template_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True, default=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=_html_safe_text,
    )


def renderer_hash() -> str:
    """Changes whenever the templates or the renderer version change: every page is rewritten."""
    digest = hashlib.sha256(RENDER_VERSION.encode())
    for path in sorted(TEMPLATES_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(TEMPLATES_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def page_url_path(url_path: str, page: int) -> str:
    return url_path if page == 1 else f"{url_path}page/{page}/"


def _pagination(url_path: str, page: int, pages: int, href) -> dict | None:
    if pages <= 1:
        return None
    # Window of pages around the current one, plus first and last.
    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    links, previous = [], 0
    for number in shown:
        if number - previous > 1:
            links.append({"gap": True})
        links.append({"gap": False, "number": number, "href": href(page_url_path(url_path, number)),
                      "current": number == page})
        previous = number
    return {"page": page, "pages": pages, "links": links,
            "prev_href": href(page_url_path(url_path, page - 1)) if page > 1 else None,
            "next_href": href(page_url_path(url_path, page + 1)) if page < pages else None}


def _product_context(row: dict, images: ImageStore, href, absolute, currency: str) -> dict:
    price_text, schema_price = format_price(row["price"], currency)
    image_name = images.name_for(row["image_path"], row["image_sha256"])
    width, height = _none_if_na(row["image_width"]), _none_if_na(row["image_height"])
    image = None
    if image_name and width and height:
        image = {"src": href(f"/img/{image_name}"), "url": absolute(f"/img/{image_name}"),
                 "width": int(width), "height": int(height)}
    evidence = [{"type": str(e["attribute_type"]), "value": str(e["value"]),
                 "score": round(float(e["score"]), 4) if _none_if_na(e.get("score")) is not None else None}
                for e in _as_list(row["evidence"])]
    return {"product_id": str(row["product_id"]), "position": int(row["position"]),
            "title": str(row["product_title"] or ""), "brand": _none_if_na(row["brand"]),
            "price_text": price_text, "price": schema_price, "image": image,
            "match_type": row["match_type"], "matched_attributes": _none_if_na(row["matched_attributes"]),
            "mean_score": round(float(row["mean_score"]), 4) if _none_if_na(row["mean_score"]) is not None else None,
            "evidence": evidence,
            # near-identical products folded onto this card (int_collection_feed_variants)
            "variants": max(int(_none_if_na(row["variant_count"]) or 1) - 1, 0)}


def _collection_jsonld(ctx: dict, currency: str) -> dict:
    items = []
    for product in ctx["products"]:
        item = {"@type": "Product", "name": product["title"], "sku": product["product_id"]}
        if product["brand"]:
            item["brand"] = {"@type": "Brand", "name": product["brand"]}
        if product["image"]:
            item["image"] = product["image"]["url"]
        if product["price"] is not None:
            item["offers"] = {"@type": "Offer", "price": product["price"], "priceCurrency": currency,
                              "url": ctx["page"]["url"]}
        items.append({"@type": "ListItem", "position": product["position"], "item": item})
    return {
        "@context": "https://schema.org",
        "@type": "CollectionPage",
        "name": ctx["page"]["title"],
        "description": ctx["page"]["description"],
        "url": ctx["page"]["url"],
        "breadcrumb": {"@type": "BreadcrumbList", "itemListElement": [
            {"@type": "ListItem", "position": i, "name": crumb["name"], "item": crumb["url"]}
            for i, crumb in enumerate(ctx["breadcrumb"], start=1)]},
        "mainEntity": {"@type": "ItemList", "numberOfItems": len(items), "itemListElement": items},
    }


def collection_page_contexts(entry, rows: list[dict], *, page_size: int, site: dict, trail: list, related: list,
                             pages_by_url: dict[str, int], images: ImageStore, href, absolute, currency: str):
    """(page number, site-relative path, render context) for each page of one collection. A
    near-duplicate's pages name the canonical collection's matching page as rel=canonical."""
    products_all = [_product_context(r, images, href, absolute, currency) for r in rows]
    pages = pages_by_url[entry.url_path]
    brands = [b for b, _ in Counter(p["brand"] for p in products_all if p["brand"]).most_common(3)]
    prices = [Decimal(p["price"]) for p in products_all if p["price"] is not None]
    price_range = (min(prices), max(prices)) if prices else (None, None)
    description = describe(entry.title, len(products_all), brands, price_range, currency)
    crumbs = [{"name": "Home", "href": href("/"), "url": absolute("/")}]
    crumbs += [{"name": a.title, "href": href(a.url_path), "url": absolute(a.url_path)} for a in trail]
    related_links = [{"title": r.title, "href": href(r.url_path),
                      "shared": [v for i, v in zip(entry.attribute_ids, entry.attribute_values) if i in r.attribute_ids]}
                     for r in related]
    for page in range(1, pages + 1):
        own_path = page_url_path(entry.url_path, page)
        if entry.status == "published":
            canonical_path = own_path  # paginated pages are canonical to themselves
        else:  # near-duplicate: defer to the canonical collection's matching page
            canonical_pages = pages_by_url.get(entry.canonical_url_path, 1)
            canonical_path = page_url_path(entry.canonical_url_path, page if page <= canonical_pages else 1)
        products = products_all[(page - 1) * page_size: page * page_size]
        title = entry.title if page == 1 else f"{entry.title} \u2013 page {page} of {pages}"
        yield own_path, {
            "site": site,
            "collection": {"title": entry.title, "status": entry.status,
                           "attributes": [{"type": t, "value": v} for t, v in
                                          zip(entry.attribute_types, entry.attribute_values)],
                           "product_total": len(products_all),
                           "canonical_href": href(entry.canonical_url_path)},
            "page": {"title": title, "document_title": f"{title} | {SITE_NAME}",
                     "description": description if page == 1 else truncate(f"Page {page} of {pages}. {description}", 160),
                     "url": absolute(own_path), "canonical_url": absolute(canonical_path),
                     "og_image": next((p["image"]["url"] for p in products if p["image"]), None)},
            "breadcrumb": crumbs + [{"name": entry.title, "href": href(entry.url_path), "url": absolute(entry.url_path)}],
            "products": products,
            "eager_images": EAGER_IMAGES,
            "pagination": _pagination(entry.url_path, page, pages, href),
            "related": related_links,
        }


def home_context(published: list, site: dict, href, absolute) -> dict:
    """The home page: every published collection, by title."""
    return {"site": site, "collections": [{"title": e.title, "href": href(e.url_path)} for e in published],
            "page": {"title": f"{SITE_NAME}: shop by collection",
                     "document_title": f"{SITE_NAME}: shop by collection",
                     "description": truncate(f"Browse {len(published)} shopping collections, each a curated "
                                             "set of products sharing the same attributes.", 160),
                     "url": absolute("/"), "canonical_url": absolute("/")}}
