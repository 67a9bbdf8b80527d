"""`publish_site`: read the marts, render the pages that changed, write photos, sitemaps and
redirects into a staged copy of the site, and swap it in."""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from pinlanding import settings
from pinlanding.publish import pages as P
from pinlanding.publish.files import (MANIFEST_NAME, _key, _read_manifest, _remove_page, _stage, _swap_in,
                                      write_if_changed)
from pinlanding.publish.inputs import (MartSource, _check_marts_complete, _collection_entries, _feed_rows,
                                       breadcrumb_trail, load_marts, related_collections)
from pinlanding.publish.photos import ImageStore
from pinlanding.publish.sitemaps import (_w3c_datetime, netlify_redirects, nginx_redirect_map, redirect_pairs,
                                         robots_txt, write_sitemaps)


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


class _Pages:
    """Writes pages whose key changed since the last publish; counts what it did."""

    def __init__(self, out_dir: Path, old_pages: dict[str, str]):
        self.out_dir, self.old_pages = out_dir, old_pages
        self.new_pages: dict[str, str] = {}
        self.written = self.unchanged = 0
        self.render_seconds = 0.0

    def write(self, rel_path: str, key: str, render) -> None:
        self.new_pages[rel_path] = key
        if self.old_pages.get(rel_path) == key and (self.out_dir / rel_path).is_file():
            self.unchanged += 1
            return
        tick = time.perf_counter()
        write_if_changed(self.out_dir / rel_path, render().encode())
        self.render_seconds += time.perf_counter() - tick
        self.written += 1


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
    site_dir = Path(out_dir).resolve() if out_dir else default_site_dir()
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
    related, trails = related_collections(entries), breadcrumb_trail(entries)
    pages_by_url = {e.url_path: max(1, math.ceil(len(feed_rows.get(e.collection_id, ())) / page_size))
                    for e in entries}
    loaded = time.perf_counter()

    stage_dir = _stage(site_dir)
    previous = _read_manifest(stage_dir)
    images = ImageStore(stage_dir, Path(image_root) if image_root else settings.catalog_dir(),
                        previous.get("images", {}))
    env = P.template_environment()
    collection_template = env.get_template("collection.html")
    renderer = P.renderer_hash()
    site = {"name": P.SITE_NAME, "home_href": href("/"), "home_url": absolute("/"), "lang": "en"}
    pages = _Pages(stage_dir, previous.get("pages", {}) if not full else {})

    for entry in entries:
        for own_path, ctx in P.collection_page_contexts(
                entry, feed_rows.get(entry.collection_id, []), page_size=page_size, site=site,
                trail=trails[entry.collection_id], related=related[entry.collection_id], pages_by_url=pages_by_url,
                images=images, href=href, absolute=absolute, currency=currency):
            def render(ctx=ctx):
                ctx["jsonld"] = P._collection_jsonld(ctx, currency)
                return collection_template.render(**ctx)
            pages.write(own_path.lstrip("/") + "index.html", _key(renderer, entry.content_hash, currency, ctx), render)

    published = sorted((e for e in entries if e.status == "published"), key=lambda e: (e.title.lower(), e.url_path))
    for rel_path, template, ctx in (("index.html", "home.html", P.home_context(published, site, href, absolute)),
                                    ("404.html", "404.html", {"site": site})):
        pages.write(rel_path, _key(renderer, ctx), lambda template=template, ctx=ctx: env.get_template(template).render(**ctx))

    removed = 0
    for rel_path in sorted(set(previous.get("pages", {})) - set(pages.new_pages)):
        _remove_page(stage_dir, rel_path)
        removed += 1
    images_added, images_removed = images.materialize()
    rendered = time.perf_counter()

    # Sitemaps: published collections' first pages (the URL a collection is known by) and home.
    lastmods = [_w3c_datetime(e.content_changed_at) for e in published]
    sitemap_entries = [(absolute("/"), max((m for m in lastmods if m), default=None))]
    sitemap_entries += [(absolute(e.url_path), m) for e, m in zip(published, lastmods)]
    tick = time.perf_counter()
    sitemaps = write_sitemaps(sitemap_entries, stage_dir, base_url)
    sitemap_seconds = time.perf_counter() - tick
    write_if_changed(stage_dir / "robots.txt", robots_txt(base_url).encode())
    pairs = redirect_pairs(tables["collection_redirects"], base_path)
    write_if_changed(stage_dir / "_redirects", netlify_redirects(pairs).encode())
    write_if_changed(stage_dir / "redirects.map", nginx_redirect_map(pairs).encode())
    finished = time.perf_counter()

    manifest = {"format": 1, "renderer": renderer, "base_url": base_url, "page_size": page_size,
                "pages": pages.new_pages, "images": images.cache, "sitemaps": sitemaps["files"]}
    write_if_changed(stage_dir / MANIFEST_NAME, json.dumps(manifest, indent=0, sort_keys=True).encode())
    _swap_in(stage_dir, site_dir)

    by_status = Counter(c for c in tables["collections"]["status"])
    return {
        "out_dir": str(site_dir), "base_url": base_url, "page_size": page_size,
        "collections": len(tables["collections"]),
        "collections_published": by_status.get("published", 0),
        "collections_duplicate": by_status.get("duplicate", 0),
        "collections_held_back": by_status.get("held_back", 0),
        "collections_skipped": skipped,
        "collection_pages": len(entries),
        "pages_total": len(pages.new_pages), "pages_written": pages.written, "pages_unchanged": pages.unchanged,
        "pages_removed": removed,
        "images": len(images.sources), "images_added": images_added, "images_removed": images_removed,
        "images_skipped": images.skipped,
        "sitemap_files": len(sitemaps["files"]), "sitemap_urls": sitemaps["urls"],
        "redirects": len(pairs),
        "seconds_load": round(loaded - started, 3),
        "seconds_render": round(pages.render_seconds, 3),
        "seconds_pages": round(rendered - loaded, 3),
        "seconds_sitemaps": round(sitemap_seconds, 4),
        "seconds_site_files": round(finished - rendered, 3),
        "seconds_total": round(time.perf_counter() - started, 3),
        "pages_per_second": round(pages.written / pages.render_seconds, 1) if pages.render_seconds else None,
    }
