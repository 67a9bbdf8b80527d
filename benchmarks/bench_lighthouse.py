"""Lighthouse SEO and accessibility scores of published landing pages.

Publishes the collection marts into a scratch directory (the warehouse's marts, or with --fixture
marts built from real catalog products), serves it on loopback and runs the npm Lighthouse
(tools/lighthouse, `make setup`) with Debian's Chromium on a sample of pages: home, collection
first pages, a later page of a paginated collection and a near-duplicate. Prints each page's
scores, the failing audits and the minimum per category.

    .venv/bin/python benchmarks/bench_lighthouse.py [--pages 6] [--fixture] [--site-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
LIGHTHOUSE = PROJECT_DIR / "tools" / "lighthouse" / "node_modules" / ".bin" / "lighthouse"
CHROME_PATH = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"


def run_lighthouse(url: str, categories: tuple[str, ...] = ("seo", "accessibility")) -> dict:
    """Scores 0-100 per category, plus `failing`: ids of audits scoring below 1."""
    if not LIGHTHOUSE.exists():
        raise FileNotFoundError(f"{LIGHTHOUSE} missing: run `make setup` (npm ci in tools/lighthouse)")
    env = {**os.environ, "CHROME_PATH": CHROME_PATH}
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        run = subprocess.run(
            [str(LIGHTHOUSE), url, "--quiet", "--output=json", f"--output-path={report_path}",
             f"--only-categories={','.join(categories)}", f"--chrome-flags={CHROME_FLAGS}",
             "--form-factor=desktop", "--screenEmulation.disabled", "--throttling-method=provided"],
            env=env, capture_output=True, text=True, timeout=180)
        if run.returncode != 0:
            raise RuntimeError(f"lighthouse failed on {url}:\n{run.stderr[-3000:]}")
        report = json.loads(report_path.read_text())
    scores = {name: round(report["categories"][name]["score"] * 100) for name in categories}
    audit_ids = {ref["id"] for name in categories for ref in report["categories"][name]["auditRefs"]}
    scores["failing"] = sorted(a for a in audit_ids
                               if report["audits"][a]["score"] is not None and report["audits"][a]["score"] < 1)
    return scores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sample_urls(site_dir: Path, base_url: str, n: int) -> list[str]:
    manifest = json.loads((site_dir / "_publish_manifest.json").read_text())
    pages = sorted(manifest["pages"])
    firsts = [p for p in pages if p.startswith("c/") and "/page/" not in p]
    later = [p for p in pages if "/page/" in p][:1]
    duplicates = [p for p in firsts if 'rel="canonical" href="' + base_url + "/" + p[: -len("index.html")] + '"'
                  not in (site_dir / p).read_text()][:1]
    step = max(1, len(firsts) // max(1, n - 3))
    chosen = ["index.html"] + later + duplicates + firsts[::step]
    seen, urls = set(), []
    for p in chosen:
        if p not in seen:
            seen.add(p)
            urls.append(base_url + "/" + p[: -len("index.html")])
    return urls[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=6, help="pages to audit")
    parser.add_argument("--fixture", action="store_true",
                        help="marts built from real catalog products instead of the warehouse's")
    parser.add_argument("--site-dir", help="publish here (default: a scratch directory)")
    args = parser.parse_args()

    sys.path.insert(0, str(PROJECT_DIR))
    from pinlanding.preview import make_server
    from pinlanding.publish import publish_site
    from pinlanding.settings import catalog_dir

    marts = None
    if args.fixture:
        from tests.browser.site_marts import build_marts, read_catalog_products

        marts = build_marts(read_catalog_products(catalog_dir(), limit=400))
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        site_dir = Path(args.site_dir or scratch)
        stats = publish_site(marts, site_dir, base_url)
        print(f"published {stats['collection_pages']} collections, {stats['pages_total']} pages "
              f"({'fixture marts' if args.fixture else 'warehouse marts'}) at {base_url}")
        server = make_server(site_dir, port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        results = []
        try:
            for url in _sample_urls(site_dir, base_url, args.pages):
                scores = run_lighthouse(url)
                results.append(scores)
                print(f"SEO {scores['seo']:3d}  accessibility {scores['accessibility']:3d}  {url}"
                      + (f"  failing: {', '.join(scores['failing'])}" if scores["failing"] else ""))
        finally:
            server.shutdown()
            server.server_close()
    print(f"minimum over {len(results)} pages: SEO {min(r['seo'] for r in results)}, "
          f"accessibility {min(r['accessibility'] for r in results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
