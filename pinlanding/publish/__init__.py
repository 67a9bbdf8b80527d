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

One module per part: inputs.py (the marts and the site model), pages.py (formatting, templates,
render contexts, JSON-LD), photos.py, sitemaps.py (sitemaps, robots.txt, redirect files),
files.py (atomic writes, manifest, staging and swap), site.py (`publish_site`, which runs them).
"""

from pinlanding.publish.files import write_if_changed
from pinlanding.publish.inputs import (COLLECTION_COLUMNS, FEED_COLUMNS,
                                       REDIRECT_COLUMNS, CollectionEntry, breadcrumb_trail, is_safe_url_path,
                                       load_marts, related_collections)
from pinlanding.publish.pages import describe, format_price, renderer_hash, truncate
from pinlanding.publish.site import default_base_url, default_page_size, default_site_dir, normalize_base_url, publish_site
from pinlanding.publish.sitemaps import nginx_redirect_map, netlify_redirects, redirect_pairs, robots_txt, write_sitemaps

__all__ = [
    "COLLECTION_COLUMNS", "FEED_COLUMNS", "REDIRECT_COLUMNS", "CollectionEntry", "breadcrumb_trail",
    "default_base_url", "default_page_size", "default_site_dir", "describe", "format_price", "is_safe_url_path",
    "load_marts", "netlify_redirects", "nginx_redirect_map", "normalize_base_url", "publish_site",
    "redirect_pairs", "related_collections", "renderer_hash", "robots_txt", "truncate", "write_if_changed",
    "write_sitemaps",
]
