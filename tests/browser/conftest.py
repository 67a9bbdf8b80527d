"""A real published site for the browser tests: marts built from real catalog products and photos,
written to a temporary warehouse, published by pinlanding.publish, served on loopback by
pinlanding.preview and opened in Debian's headless Chromium through chromedriver."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.browser.site_marts import build_marts, read_catalog_products, write_warehouse

CHROMIUM = os.environ.get("PINLANDING_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PINLANDING_CHROMEDRIVER", "/usr/bin/chromedriver")
# Product text a merchant could send; it must come out as text, never as markup.
HOSTILE_TITLE = '<script>alert(1)</script> & "quotes"'
HOSTILE_BRAND = "<img src=x onerror=alert(2)>"
PAGE_SIZE = 12  # small pages so the fixture has paginated collections


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def landing_marts(real_catalog):
    products = read_catalog_products(real_catalog, limit=160)
    # In the most common article type, so it lands in published feeds.
    common = Counter(p["article_type"] for p in products).most_common(1)[0][0]
    hostile = next(p for p in products if p["article_type"] == common)
    hostile["title"], hostile["brand"] = HOSTILE_TITLE, HOSTILE_BRAND
    return build_marts(products)


@contextmanager
def data_dir_env(data_dir: Path):
    """PINLANDING_DATA_DIR set for the duration only, so no other test sees it."""
    saved = os.environ.get("PINLANDING_DATA_DIR")
    os.environ["PINLANDING_DATA_DIR"] = str(data_dir)
    try:
        yield data_dir
    finally:
        if saved is None:
            os.environ.pop("PINLANDING_DATA_DIR", None)
        else:
            os.environ["PINLANDING_DATA_DIR"] = saved


@pytest.fixture(scope="session")
def landing_warehouse(tmp_path_factory, landing_marts) -> Path:
    """A data directory whose warehouse holds the fixture marts as Parquet tables."""
    data_dir = tmp_path_factory.mktemp("data")
    write_warehouse(data_dir, landing_marts)
    return data_dir


@pytest.fixture(scope="session")
def landing_site(landing_warehouse):
    """The site published from the warehouse and served on loopback: (site dir, base URL, stats)."""
    from pinlanding.preview import make_server
    from pinlanding.publish import publish_site

    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    out_dir = landing_warehouse / "site"
    with data_dir_env(landing_warehouse):  # marts read from the warehouse's Parquet files
        stats = publish_site(out_dir=out_dir, base_url=base_url, page_size=PAGE_SIZE)
    server = make_server(out_dir, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield out_dir, base_url, stats
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium driven by chromedriver (selenium), loopback only."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(binary):
            pytest.fail(f"{binary} not found: `make setup` installs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900",
                 # loopback only: every other host fails to resolve
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                 "--no-proxy-server", "--disable-background-networking"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
