"""Publish the collection marts as a static landing-page site.

Reads `collections`, `collection_feeds` and `collection_redirects` (the contract in
models/collections/_collections__models.yml) and writes, under the site directory:

    c/<slug>-<id>/index.html, c/<slug>-<id>/page/<n>/index.html   one page per valid collection
    index.html, 404.html                                           home (every published collection)
    img/<sha256>.jpg                                               product photos, content-addressed
    sitemap-<n>.xml.gz, sitemap_index.xml.gz, robots.txt           published pages only
    _redirects (Netlify), redirects.map (nginx `map`)              old URL -> current canonical URL
    _publish_manifest.json                                         what the last publish wrote

Publishing is incremental: each page has a key (its collection's content_hash, a hash of the
templates and renderer, and the page's full render context); a page is rewritten only when its key
changed, and pages of collections that are no longer valid are removed. Each publish works in a
hard-linked copy of the site (`.<site>.staging`) and swaps it in whole at the end, so the live site
is always the last complete publish, even when one is killed half-way.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from pinlanding import settings

# Bump when the renderer's output changes in a way the templates' own hash does not capture.
RENDER_VERSION = "2"  # 2: control characters dropped from HTML text
SITE_NAME = "PinLanding"
TEMPLATES_DIR = Path(__file__).with_name("templates")
MANIFEST_NAME = "_publish_manifest.json"
SITEMAP_INDEX_NAME = "sitemap_index.xml.gz"
# sitemaps.org protocol limits per sitemap file.
SITEMAP_MAX_URLS = 50_000
SITEMAP_MAX_BYTES = 50 * 1024 * 1024
VALID_STATUSES = ("published", "duplicate")
RELATED_LIMIT = 8
EAGER_IMAGES = 8  # above the fold: load at once; the rest lazily
# Top-level names the publisher owns; a collection URL must not land on them.
RESERVED_SEGMENTS = {"img", "page"}
URL_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9._~-]+/)+$")
CURRENCY_SYMBOLS = {"INR": "\u20b9", "USD": "$", "EUR": "\u20ac", "GBP": "\u00a3"}

COLLECTION_COLUMNS = [
    "collection_id", "attribute_ids", "attribute_types", "attribute_values", "product_count",
    "title", "url_path", "status", "canonical_collection_id", "canonical_url_path", "feed_size",
    "content_hash", "content_changed_at",
]
FEED_COLUMNS = [
    "collection_id", "position", "product_id", "match_type", "matched_attributes", "mean_score",
    "evidence", "product_title", "brand", "price", "image_path", "image_sha256", "image_width", "image_height",
]
REDIRECT_COLUMNS = ["from_url_path", "to_url_path", "reason"]

MartSource = Mapping[str, pd.DataFrame] | Callable[..., pd.DataFrame] | None


# ----------------------------------------------------------------------------- configuration


def default_site_dir() -> Path:
    value = os.environ.get("PINLANDING_SITE_DIR")
    return Path(value).resolve() if value else settings.data_dir() / "site"


def default_base_url() -> str:
    return os.environ.get("PINLANDING_SITE_BASE_URL", "http://127.0.0.1:8000")


def default_page_size() -> int:
    return int(os.environ.get("PINLANDING_SITE_PAGE_SIZE", "48"))


def normalize_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"site base URL must be an absolute http(s) URL without query: {base_url!r}")
    return base_url.rstrip("/")


# ----------------------------------------------------------------------------- marts


def load_marts(marts: MartSource = None) -> dict[str, pd.DataFrame]:
    """The three tables the site needs, from a {name: DataFrame} mapping, a reader
    `f(name, columns)`, or (default) the warehouse's Parquet directories."""
    if marts is None:
        from pinlanding.marts import read_mart

        marts = read_mart
    wanted = {"collections": COLLECTION_COLUMNS, "collection_feeds": FEED_COLUMNS,
              "collection_redirects": REDIRECT_COLUMNS}
    tables = {}
    for name, columns in wanted.items():
        frame = marts[name] if isinstance(marts, Mapping) else marts(name, columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"mart {name} lacks contract columns {missing}")
        tables[name] = frame[columns]
    return tables


def _as_list(value) -> list:
    return [] if value is None or (isinstance(value, float) and math.isnan(value)) else list(value)


def _none_if_na(value):
    return None if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) else value


def is_safe_url_path(url_path) -> bool:
    """Site-relative directory URL that maps to a file under the site dir and nothing the
    publisher owns (no `..`, no empty segments, not the root)."""
    if not isinstance(url_path, str) or not URL_PATH_RE.match(url_path):
        return False
    segments = url_path.strip("/").split("/")
    return not any(s in (".", "..") for s in segments) and segments[0] not in RESERVED_SEGMENTS


# ----------------------------------------------------------------------------- formatting


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


# ----------------------------------------------------------------------------- images


class ImageStore:
    """Copies (hardlinks when possible) product photos into site/img/<sha256><ext>.

    Names are content hashes, so a changed photo gets a new URL and pages that show it get a new
    key. The hash is the one staging computed (collection_feeds.image_sha256); without it the photo
    is hashed here, cached in the manifest by (path, size, mtime). Only regular files under
    `image_root` (the catalog) are published.
    """

    def __init__(self, out_dir: Path, image_root: Path, cache: dict):
        self.img_dir = out_dir / "img"
        self.image_root = image_root.resolve()
        self.cache = cache
        self.names: dict[str, str | None] = {}
        self.sources: dict[str, Path] = {}
        self.skipped = 0

    def name_for(self, image_path, sha256: str | None = None) -> str | None:
        image_path, sha256 = _none_if_na(image_path), _none_if_na(sha256)
        if not image_path:
            return None
        if image_path in self.names:
            return self.names[image_path]
        name = None
        source = Path(image_path).resolve()
        if source.is_relative_to(self.image_root) and source.is_file():
            stat = source.stat()
            cached = self.cache.get(image_path)
            suffix = source.suffix.lower().replace(".jpeg", ".jpg") or ".jpg"
            if sha256:
                name = sha256 + suffix
            elif cached and cached[:2] == [stat.st_size, stat.st_mtime_ns]:
                name = cached[2]
            else:
                name = hashlib.sha256(source.read_bytes()).hexdigest() + suffix
            self.cache[image_path] = [stat.st_size, stat.st_mtime_ns, name]
            self.sources[name] = source
        else:
            self.skipped += 1
        self.names[image_path] = name
        return name

    def materialize(self) -> tuple[int, int]:
        """Make every referenced photo exist in img/ and drop the ones no page references.
        Returns (added, removed)."""
        self.img_dir.mkdir(parents=True, exist_ok=True)
        added = 0
        for name, source in self.sources.items():
            target = self.img_dir / name
            if target.exists():
                continue
            tmp = target.with_name(f".{name}.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(source, tmp)
            except OSError:  # other filesystem, or links not allowed: copy
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
            added += 1
        removed = 0
        for existing in self.img_dir.iterdir():
            if existing.name not in self.sources:
                existing.unlink()
                removed += 1
        used = {path for path, entry in self.cache.items() if entry[2] in self.sources}
        for path in list(self.cache):
            if path not in used:
                del self.cache[path]
        return added, removed


# ----------------------------------------------------------------------------- site model


@dataclass
class CollectionEntry:
    collection_id: str
    title: str
    url_path: str
    status: str
    canonical_url_path: str
    attribute_ids: list[str]
    attribute_types: list[str]
    attribute_values: list[str]
    product_count: int
    content_hash: str | None
    content_changed_at: pd.Timestamp | None


def _collection_entries(collections: pd.DataFrame) -> tuple[list[CollectionEntry], dict[str, int]]:
    """Valid collections that can get a page, and counts of the rows skipped and why."""
    skipped = Counter()
    entries: list[CollectionEntry] = []
    seen_paths: set[str] = set()
    changed_at = pd.to_datetime(collections["content_changed_at"], utc=True)
    rows = collections.assign(content_changed_at=changed_at).sort_values("collection_id")
    for row in rows.itertuples(index=False):
        if row.status not in VALID_STATUSES:
            continue
        title = _none_if_na(row.title)
        if not title or not str(title).strip():
            skipped["no_title"] += 1
            continue
        canonical = row.url_path if row.status == "published" else _none_if_na(row.canonical_url_path)
        if not is_safe_url_path(row.url_path) or not is_safe_url_path(canonical):
            skipped["unsafe_url_path"] += 1
            continue
        if row.url_path in seen_paths:
            skipped["conflicting_url_path"] += 1
            continue
        seen_paths.add(row.url_path)
        entries.append(CollectionEntry(
            collection_id=row.collection_id, title=str(title).strip(), url_path=row.url_path,
            status=row.status, canonical_url_path=canonical,
            attribute_ids=[str(a) for a in _as_list(row.attribute_ids)],
            attribute_types=[str(a) for a in _as_list(row.attribute_types)],
            attribute_values=[str(a) for a in _as_list(row.attribute_values)],
            product_count=int(_none_if_na(row.product_count) or 0),
            content_hash=_none_if_na(row.content_hash),
            content_changed_at=_none_if_na(row.content_changed_at)))
    return entries, dict(skipped)


def related_collections(entries: list[CollectionEntry], limit: int = RELATED_LIMIT) -> dict[str, list[CollectionEntry]]:
    """For each collection, published collections sharing attributes: most shared attributes
    first, then most products. A duplicate's own canonical collection leads its list."""
    published = [e for e in entries if e.status == "published"]
    by_attribute: dict[str, list[CollectionEntry]] = defaultdict(list)
    for entry in published:
        for attribute_id in entry.attribute_ids:
            by_attribute[attribute_id].append(entry)
    by_url = {e.url_path: e for e in published}
    related = {}
    for entry in entries:
        shared = Counter()
        for attribute_id in entry.attribute_ids:
            for other in by_attribute.get(attribute_id, ()):
                shared[other.collection_id] += 1
        shared.pop(entry.collection_id, None)
        lookup = {o.collection_id: o for a in entry.attribute_ids for o in by_attribute.get(a, ())}
        ranked = sorted(shared, key=lambda cid: (-shared[cid], -lookup[cid].product_count, cid))
        chosen = [lookup[cid] for cid in ranked]
        canonical = by_url.get(entry.canonical_url_path)
        if entry.status == "duplicate" and canonical is not None:
            chosen = [canonical] + [c for c in chosen if c is not canonical]
        related[entry.collection_id] = chosen[:limit]
    return related


def breadcrumb_trail(entries: list[CollectionEntry]) -> dict[str, list[CollectionEntry]]:
    """Ancestors of each collection, broadest first: a published collection whose attributes are
    a strict subset (the largest such subset, then the one with most products), recursively."""
    published_by_set = {}
    for entry in entries:
        if entry.status == "published":
            key = frozenset(entry.attribute_ids)
            best = published_by_set.get(key)
            if best is None or entry.product_count > best.product_count:
                published_by_set[key] = entry

    def parent(attribute_ids: list[str]) -> CollectionEntry | None:
        for size in range(len(attribute_ids) - 1, 0, -1):
            candidates = [published_by_set[frozenset(c)] for c in combinations(attribute_ids, size)
                          if frozenset(c) in published_by_set]
            if candidates:
                return max(candidates, key=lambda e: (e.product_count, e.collection_id))
        return None

    trails = {}
    for entry in entries:
        trail, current = [], parent(entry.attribute_ids)
        while current is not None:
            trail.insert(0, current)
            current = parent(current.attribute_ids)
        trails[entry.collection_id] = trail
    return trails


def _feed_rows(feeds: pd.DataFrame, collection_ids: set[str]) -> dict[str, list[dict]]:
    feeds = feeds[feeds["collection_id"].isin(collection_ids)].sort_values(["collection_id", "position"])
    columns = {c: feeds[c].tolist() for c in FEED_COLUMNS}
    rows: dict[str, list[dict]] = defaultdict(list)
    for i in range(len(feeds)):
        rows[columns["collection_id"][i]].append({c: columns[c][i] for c in FEED_COLUMNS})
    return rows


# ----------------------------------------------------------------------------- rendering


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
            "evidence": evidence}


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


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomic write; False (and no write) when the file already holds exactly these bytes."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def _remove_page(out_dir: Path, rel_path: str) -> None:
    target = out_dir / rel_path
    target.unlink(missing_ok=True)
    parent = target.parent
    while parent != out_dir and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


# ----------------------------------------------------------------------------- sitemaps, robots, redirects


def _w3c_datetime(value) -> str | None:
    value = _none_if_na(value)
    if value is None:
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _gzip(data: bytes) -> bytes:
    # mtime=0: identical content gives identical bytes, so unchanged sitemaps are not rewritten.
    return gzip.compress(data, compresslevel=6, mtime=0)


def write_sitemaps(entries: Iterable[tuple[str, str | None]], out_dir: Path, base_url: str,
                   max_urls: int = SITEMAP_MAX_URLS) -> dict:
    """Gzipped sitemap files (at most `max_urls` URLs and 50 MB each) plus a gzipped sitemap index,
    all at the site root (a sitemap may only list URLs under its own directory).

    `entries` yields (absolute URL, W3C lastmod or None). Stale sitemap-N files from a larger
    previous site are removed. Returns {"files": [...], "urls": n, "written": n}.
    """
    header = b'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
    footer = b"</urlset>\n"
    files, chunk, chunk_bytes, chunk_lastmod, urls, written = [], [], 0, None, 0, 0

    def flush():
        nonlocal chunk, chunk_bytes, chunk_lastmod, written
        name = f"sitemap-{len(files) + 1}.xml.gz"
        written += write_if_changed(out_dir / name, _gzip(header + b"".join(chunk) + footer))
        files.append((name, chunk_lastmod))
        chunk, chunk_bytes, chunk_lastmod = [], 0, None

    limit = SITEMAP_MAX_BYTES - len(header) - len(footer)
    for url, lastmod in entries:
        line = f"<url><loc>{xml_escape(url)}</loc>" + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "") + "</url>\n"
        data = line.encode()
        if chunk and (len(chunk) >= max_urls or chunk_bytes + len(data) > limit):
            flush()
        chunk.append(data)
        chunk_bytes += len(data)
        urls += 1
        # Same format and offset everywhere, so string order is time order.
        if lastmod and (chunk_lastmod is None or lastmod > chunk_lastmod):
            chunk_lastmod = lastmod
    if chunk or not files:
        flush()
    index = ['<?xml version="1.0" encoding="UTF-8"?>\n'
             '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n']
    for name, lastmod in files:
        index.append(f"<sitemap><loc>{xml_escape(base_url + '/' + name)}</loc>"
                     + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "") + "</sitemap>\n")
    index.append("</sitemapindex>\n")
    written += write_if_changed(out_dir / SITEMAP_INDEX_NAME, _gzip("".join(index).encode()))
    names = {name for name, _ in files}
    for stale in out_dir.glob("sitemap-*.xml.gz"):
        if stale.name not in names:
            stale.unlink()
    return {"files": [name for name, _ in files], "urls": urls, "written": written}


def robots_txt(base_url: str) -> str:
    return f"User-agent: *\nAllow: /\n\nSitemap: {base_url}/{SITEMAP_INDEX_NAME}\n"


def redirect_pairs(redirects: pd.DataFrame, base_path: str) -> list[tuple[str, str]]:
    """(from, to) site paths, sorted; rows with unusable paths or pointing at themselves are
    dropped (both files are whitespace-separated, so a path with whitespace cannot be expressed)."""
    pairs = {}
    for row in redirects.itertuples(index=False):
        source, target = _none_if_na(row.from_url_path), _none_if_na(row.to_url_path)
        if not isinstance(source, str) or not isinstance(target, str):
            continue
        if not source.startswith("/") or not target.startswith("/") or source == target:
            continue
        if any(ch.isspace() or ch in '"\\;{}' for ch in source + target):
            continue
        pairs[base_path + source] = base_path + target
    return sorted(pairs.items())


# Redirects apply only where no page file exists (Netlify's default "shadowing"; try_files first in
# nginx): a merged near-duplicate keeps its page, whose rel=canonical names the canonical
# collection, while renamed and removed URLs, which have no page, answer 301.


def netlify_redirects(pairs: list[tuple[str, str]]) -> str:
    lines = ["# Generated by `pinlanding publish` from collection_redirects: from to status"]
    lines += [f"{source} {target} 301" for source, target in pairs]
    return "\n".join(lines) + "\n"


def nginx_redirect_map(pairs: list[tuple[str, str]]) -> str:
    lines = [
        "# Generated by `pinlanding publish` from collection_redirects.",
        "# include in http {}; then in server {}:",
        "#     location / { try_files $uri $uri/ @pinlanding_redirect; }",
        "#     location @pinlanding_redirect { if ($pinlanding_redirect) { return 301 $pinlanding_redirect; } return 404; }",
        "map $uri $pinlanding_redirect {",
        '    default "";',
    ]
    lines += [f'    "{source}" "{target}";' for source, target in pairs]
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- publish


def _read_manifest(out_dir: Path) -> dict:
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return manifest if manifest.get("format") == 1 else {}


def _check_marts_complete() -> None:
    """Refuse marts that a killed run left half-written: Spark writes `_SUCCESS` when a table's
    write job commits, and the site must never be replaced by a publish of part of a mart."""
    from pinlanding import marts as warehouse_marts

    if hasattr(warehouse_marts, "reads_files") and not warehouse_marts.reads_files():
        return  # read through the metastore: only registered, complete tables are seen
    for name in ("collections", "collection_feeds", "collection_redirects"):
        path = warehouse_marts.warehouse_table_path(name)
        if path.is_dir() and not (path / "_SUCCESS").is_file():
            raise RuntimeError(f"mart {name} at {path} was not completely written (an interrupted run?); "
                               f"the site was left as it was. Run `pinlanding run` to rebuild the marts.")


def _side_dirs(site_dir: Path) -> tuple[Path, Path]:
    """(staging, previous): siblings of the site, so renames between them stay on one filesystem."""
    return site_dir.with_name(f".{site_dir.name}.staging"), site_dir.with_name(f".{site_dir.name}.previous")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _stage(site_dir: Path) -> Path:
    """A fresh staging directory holding a hard-link copy of the live site (no bytes copied).

    Safe because the publisher never modifies a file in place: every write is a temp file plus
    os.replace (a new inode), every removal an unlink, so the live site's inodes stay untouched.
    Leftovers of a killed publish are cleared first; if it died between the two renames of a
    non-atomic swap, the previous site is put back.
    """
    staging, previous = _side_dirs(site_dir)
    if not site_dir.exists() and previous.is_dir():
        os.rename(previous, site_dir)
    for leftover in (staging, previous):
        if leftover.exists():
            shutil.rmtree(leftover)
    site_dir.parent.mkdir(parents=True, exist_ok=True)
    if site_dir.is_dir():
        # `.name.tmp` files are a killed write's temp files: never publish or link them
        shutil.copytree(site_dir, staging, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(".*.tmp"))
    else:
        staging.mkdir()
    return staging


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(staging: Path, site_dir: Path) -> None:
    """Make the staged site the live one; a reader sees the old site or the new one, never a mix."""
    if site_dir.is_dir() and _exchange(staging, site_dir):
        shutil.rmtree(staging)  # now the old site
        return
    _, previous = _side_dirs(site_dir)
    if site_dir.exists():  # no atomic exchange here: a brief moment without a site, never a mixed one
        os.rename(site_dir, previous)
    os.rename(staging, site_dir)
    shutil.rmtree(previous, ignore_errors=True)


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def publish_site(marts: MartSource = None, out_dir: str | Path | None = None, base_url: str | None = None,
                 page_size: int | None = None, *, image_root: str | Path | None = None,
                 currency: str = "INR", full: bool = False) -> dict:
    """Render every valid collection into static HTML under `out_dir`; returns stats.

    marts: {name: DataFrame}, a reader `f(name, columns) -> DataFrame`, or None for the warehouse
    ($PINLANDING_DATA_DIR). out_dir / base_url / page_size default to $PINLANDING_SITE_DIR
    ($PINLANDING_DATA_DIR/site), $PINLANDING_SITE_BASE_URL (http://127.0.0.1:8000) and
    $PINLANDING_SITE_PAGE_SIZE (48). image_root: photos outside it are not published (default the
    catalog dir). full: rewrite every page even if unchanged.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir).resolve() if out_dir else default_site_dir()
    base_url = normalize_base_url(base_url or default_base_url())
    page_size = int(page_size or default_page_size())
    if page_size < 1:
        raise ValueError("page size must be at least 1")
    base_path = urlsplit(base_url).path  # site served under a path prefix: links carry it

    def href(path: str) -> str:
        return base_path + path

    def absolute(path: str) -> str:
        return base_url + path

    if marts is None:
        _check_marts_complete()
    tables = load_marts(marts)
    entries, skipped = _collection_entries(tables["collections"])
    feed_rows = _feed_rows(tables["collection_feeds"], {e.collection_id for e in entries})
    related = related_collections(entries)
    trails = breadcrumb_trail(entries)
    page_counts = {e.collection_id: max(1, math.ceil(len(feed_rows.get(e.collection_id, ())) / page_size))
                   for e in entries}
    pages_by_url = {e.url_path: page_counts[e.collection_id] for e in entries}
    loaded = time.perf_counter()

    # Build the new site in a hard-linked copy of the live one and swap it in at the end: readers
    # (and a run killed half-way) only ever see the last complete site.
    site_dir = out_dir
    out_dir = _stage(site_dir)
    previous = _read_manifest(out_dir)
    old_pages: dict[str, str] = previous.get("pages", {}) if not full else {}
    images = ImageStore(out_dir, Path(image_root) if image_root else settings.catalog_dir(),
                        previous.get("images", {}))
    env = template_environment()
    collection_template = env.get_template("collection.html")
    renderer = renderer_hash()
    site = {"name": SITE_NAME, "home_href": href("/"), "home_url": absolute("/"), "lang": "en"}

    new_pages: dict[str, str] = {}
    written = unchanged = 0
    render_seconds = 0.0
    for entry in entries:
        rows = feed_rows.get(entry.collection_id, [])
        products_all = [_product_context(r, images, href, absolute, currency) for r in rows]
        pages = page_counts[entry.collection_id]
        brands = [b for b, _ in Counter(p["brand"] for p in products_all if p["brand"]).most_common(3)]
        prices = [Decimal(p["price"]) for p in products_all if p["price"] is not None]
        price_range = (min(prices), max(prices)) if prices else (None, None)
        description = describe(entry.title, len(products_all), brands, price_range, currency)
        crumbs = [{"name": "Home", "href": href("/"), "url": absolute("/")}]
        crumbs += [{"name": a.title, "href": href(a.url_path), "url": absolute(a.url_path)}
                   for a in trails[entry.collection_id]]
        related_links = [{"title": r.title, "href": href(r.url_path),
                          "shared": [v for i, v in zip(entry.attribute_ids, entry.attribute_values)
                                     if i in r.attribute_ids]}
                         for r in related[entry.collection_id]]
        for page in range(1, pages + 1):
            own_path = page_url_path(entry.url_path, page)
            if entry.status == "published":
                canonical_path = own_path  # paginated pages are canonical to themselves
            else:  # near-duplicate: defer to the canonical collection's matching page
                canonical_pages = pages_by_url.get(entry.canonical_url_path, 1)
                canonical_path = page_url_path(entry.canonical_url_path, page if page <= canonical_pages else 1)
            products = products_all[(page - 1) * page_size: page * page_size]
            title = entry.title if page == 1 else f"{entry.title} \u2013 page {page} of {pages}"
            ctx = {
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
                "breadcrumb": crumbs + [{"name": entry.title, "href": href(entry.url_path),
                                         "url": absolute(entry.url_path)}],
                "products": products,
                "eager_images": EAGER_IMAGES,
                "pagination": _pagination(entry.url_path, page, pages, href),
                "related": related_links,
            }
            rel_path = own_path.lstrip("/") + "index.html"
            key = _key(renderer, entry.content_hash, currency, ctx)
            new_pages[rel_path] = key
            if old_pages.get(rel_path) == key and (out_dir / rel_path).is_file():
                unchanged += 1
                continue
            tick = time.perf_counter()
            ctx["jsonld"] = _collection_jsonld(ctx, currency)
            html = collection_template.render(**ctx)
            write_if_changed(out_dir / rel_path, html.encode())
            render_seconds += time.perf_counter() - tick
            written += 1

    # Home and 404: the site's root pages, keyed like the others.
    published = sorted((e for e in entries if e.status == "published"), key=lambda e: (e.title.lower(), e.url_path))
    home_ctx = {"site": site, "collections": [{"title": e.title, "href": href(e.url_path)} for e in published],
                "page": {"title": f"{SITE_NAME}: shop by collection",
                         "document_title": f"{SITE_NAME}: shop by collection",
                         "description": truncate(f"Browse {len(published)} shopping collections, each a curated "
                                                 "set of products sharing the same attributes.", 160),
                         "url": absolute("/"), "canonical_url": absolute("/")}}
    for rel_path, template, ctx in (("index.html", "home.html", home_ctx),
                                    ("404.html", "404.html", {"site": site})):
        key = _key(renderer, ctx)
        new_pages[rel_path] = key
        if old_pages.get(rel_path) == key and (out_dir / rel_path).is_file():
            unchanged += 1
            continue
        write_if_changed(out_dir / rel_path, env.get_template(template).render(**ctx).encode())
        written += 1

    removed = 0
    for rel_path in sorted(set(previous.get("pages", {})) - set(new_pages)):
        _remove_page(out_dir, rel_path)
        removed += 1
    images_added, images_removed = images.materialize()
    rendered = time.perf_counter()

    # Sitemaps: published collections' first pages (the URL a collection is known by) and home.
    lastmods = [_w3c_datetime(e.content_changed_at) for e in published]
    home_lastmod = max((m for m in lastmods if m), default=None)
    sitemap_entries = [(absolute("/"), home_lastmod)]
    sitemap_entries += [(absolute(e.url_path), m) for e, m in zip(published, lastmods)]
    tick = time.perf_counter()
    sitemaps = write_sitemaps(sitemap_entries, out_dir, base_url)
    sitemap_seconds = time.perf_counter() - tick
    write_if_changed(out_dir / "robots.txt", robots_txt(base_url).encode())
    pairs = redirect_pairs(tables["collection_redirects"], base_path)
    write_if_changed(out_dir / "_redirects", netlify_redirects(pairs).encode())
    write_if_changed(out_dir / "redirects.map", nginx_redirect_map(pairs).encode())
    finished = time.perf_counter()

    manifest = {"format": 1, "renderer": renderer, "base_url": base_url, "page_size": page_size,
                "pages": new_pages, "images": images.cache, "sitemaps": sitemaps["files"]}
    write_if_changed(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=0, sort_keys=True).encode())
    _swap_in(out_dir, site_dir)

    by_status = Counter(c for c in tables["collections"]["status"])
    return {
        "out_dir": str(site_dir), "base_url": base_url, "page_size": page_size,
        "collections": len(tables["collections"]),
        "collections_published": by_status.get("published", 0),
        "collections_duplicate": by_status.get("duplicate", 0),
        "collections_held_back": by_status.get("held_back", 0),
        "collections_skipped": skipped,
        "collection_pages": len(entries),
        "pages_total": len(new_pages), "pages_written": written, "pages_unchanged": unchanged,
        "pages_removed": removed,
        "images": len(images.sources), "images_added": images_added, "images_removed": images_removed,
        "images_skipped": images.skipped,
        "sitemap_files": len(sitemaps["files"]), "sitemap_urls": sitemaps["urls"],
        "redirects": len(pairs),
        "seconds_load": round(loaded - started, 3),
        "seconds_render": round(render_seconds, 3),
        "seconds_pages": round(rendered - loaded, 3),
        "seconds_sitemaps": round(sitemap_seconds, 4),
        "seconds_site_files": round(finished - rendered, 3),
        "seconds_total": round(time.perf_counter() - started, 3),
        "pages_per_second": round(written / render_seconds, 1) if render_seconds else None,
    }
