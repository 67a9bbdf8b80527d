"""Read warehouse tables straight from their Parquet directories, without Spark.

The embedded Derby metastore admits one process at a time, so readers that run beside a pipeline
(the site publisher, the dashboard) must not open a SparkSession. Managed tables of the local
target live at $PINLANDING_DATA_DIR/warehouse/<schema>.db/<table>/ as Parquet part files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from pinlanding.settings import data_dir, target_schema


class MartNotFoundError(FileNotFoundError):
    """The table has not been built in this data directory (yet)."""


def warehouse_table_path(name: str) -> Path:
    """Directory of managed table `name` in the target schema (local target layout)."""
    return data_dir() / "warehouse" / f"{target_schema()}.db" / name


def read_mart(name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The table as a DataFrame; list columns come back as numpy arrays of values/dicts.

    Spark's `_SUCCESS`, `_temporary/` and hidden `.crc` files are skipped; Hive-style partition
    directories (`key=value/`) become columns.
    """
    path = warehouse_table_path(name)
    if not path.is_dir():
        raise MartNotFoundError(f"table {name!r} not found at {path} (has the pipeline built it?)")
    dataset = ds.dataset(
        path, format="parquet", partitioning="hive", ignore_prefixes=["_", "."]
    )
    return dataset.to_table(columns=columns).to_pandas()
