import os
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
CATALOG_DIR = Path(os.environ.get("PINLANDING_CATALOG_DIR", PROJECT_DIR.parent / "shared/data/fashion-catalog"))


@pytest.fixture(scope="session")
def real_catalog() -> Path:
    if not (CATALOG_DIR / "products.jsonl.gz").is_file():
        pytest.fail(f"the real catalog is expected at {CATALOG_DIR} (../shared beside the repo)")
    return CATALOG_DIR
