"""Static-site publish throughput: pages rendered per second and sitemap generation time for the
catalog's collections, then sitemap generation for a synthetic 1M-collection site.

Marts come from the warehouse ($PINLANDING_DATA_DIR, read from Parquet, no Spark), or with
--fixture from marts built out of every catalog product that has a photo (tests/browser/site_marts.py).
Everything is written to a scratch directory.

    .venv/bin/python benchmarks/bench_publish.py [--fixture] [--synthetic 1000000] [--page-size 48]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from pinlanding.publish import publish_site, write_sitemaps  # noqa: E402
from pinlanding.settings import catalog_dir  # noqa: E402

BASE_URL = "https://shop.example"


def synthetic_entries(n: int):
    """n collection URLs shaped like the mart's (/c/<slug>-<id suffix>/) with distinct lastmods."""
    for i in range(n):
        yield (f"{BASE_URL}/c/navy-blue-slim-fit-cotton-shirts-for-men-{i:012x}/",
               f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}T{i % 24:02d}:{i % 60:02d}:00+00:00")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixture", action="store_true", help="marts built from catalog products, not the warehouse")
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="URLs in the synthetic sitemap")
    parser.add_argument("--page-size", type=int, default=48)
    args = parser.parse_args()

    marts, source = None, "warehouse marts"
    if args.fixture:
        from tests.browser.site_marts import build_marts, read_catalog_products

        started = time.perf_counter()
        marts = build_marts(read_catalog_products(catalog_dir(), limit=None))
        source = f"fixture marts from the catalog (built in {time.perf_counter() - started:.1f}s)"

    with tempfile.TemporaryDirectory() as scratch:
        site = Path(scratch) / "site"
        full = publish_site(marts, site, BASE_URL, args.page_size)
        print(f"source: {source}")
        print(f"collections: {full['collections']} ({full['collections_published']} published, "
              f"{full['collections_duplicate']} duplicate, {full['collections_held_back']} held back); "
              f"pages: {full['pages_total']}; photos: {full['images']}")
        print(f"full publish: {full['pages_written']} pages in {full['seconds_total']:.2f}s total "
              f"(load {full['seconds_load']:.2f}s, pages+photos {full['seconds_pages']:.2f}s, "
              f"sitemaps/robots/redirects {full['seconds_site_files']:.3f}s)")
        print(f"render rate: {full['pages_per_second']:.0f} pages/s (template render + write), "
              f"{full['pages_written'] / full['seconds_total']:.0f} pages/s end to end")
        again = publish_site(marts, site, BASE_URL, args.page_size)
        print(f"incremental publish, nothing changed: {again['pages_written']} pages written, "
              f"{again['pages_unchanged']} unchanged, {again['seconds_total']:.2f}s")

        print(f"sitemaps for the catalog's collections: {full['sitemap_urls']} URLs in "
              f"{full['sitemap_files']} file(s), {full['seconds_sitemaps'] * 1000:.1f} ms")

        big_dir = Path(scratch) / "synthetic"
        big_dir.mkdir()
        started = time.perf_counter()
        big = write_sitemaps(synthetic_entries(args.synthetic), big_dir, BASE_URL)
        seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in big_dir.iterdir())
        print(f"synthetic sitemap: {big['urls']:,} URLs -> {len(big['files'])} gzipped files + index, "
              f"{size / 2**20:.1f} MiB, in {seconds:.2f}s ({big['urls'] / seconds:,.0f} URLs/s)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
