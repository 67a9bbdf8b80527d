"""Where things live. One data directory holds the warehouse, metastore, MLflow store and reports."""

from __future__ import annotations

import os
from functools import lru_cache
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


@lru_cache(maxsize=1)
def _project_vars() -> dict:
    import yaml

    return yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]


def project_var(name: str):
    """A dbt var's value as dbt_project.yml declares it: thresholds and accepted values live there
    once, and Python code outside dbt (the GX checkpoint, image checks' defaults) reads them here."""
    try:
        return _project_vars()[name]
    except KeyError:
        raise KeyError(f"dbt var {name!r} is not declared in dbt_project.yml") from None
