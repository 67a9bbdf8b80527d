"""Where things live. One data directory holds the warehouse, metastore, MLflow store and reports."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CATALOG_DIR = PROJECT_DIR.parent / "shared" / "data" / "fashion-catalog"


def data_dir() -> Path:
    """$PINLANDING_DATA_DIR, or ./data in the project. Relative values resolve against the cwd,
    as Spark and Derby resolve them when dbt runs from the project directory."""
    value = os.environ.get("PINLANDING_DATA_DIR")
    return Path(value).resolve() if value else PROJECT_DIR / "data"


def catalog_dir() -> Path:
    value = os.environ.get("PINLANDING_CATALOG_DIR")
    return Path(value).resolve() if value else DEFAULT_CATALOG_DIR.resolve()


def target_schema() -> str:
    return os.environ.get("PINLANDING_SCHEMA", "pinlanding")


def raw_schema() -> str:
    """Schema of the landed feed (declared as the dbt source `catalog`)."""
    return f"{target_schema()}_raw"


def pin_environment() -> Path:
    """Export the absolute data dir so dbt's profile and every Spark/MLflow client agree on it."""
    path = data_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PINLANDING_DATA_DIR"] = str(path)
    return path
