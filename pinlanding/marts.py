"""Read the marts the site and the dashboard show, wherever the warehouse is.

- `local` (embedded Derby, one process at a time): readers that run beside a pipeline (the site
  publisher, the dashboard) must not open a SparkSession, so managed tables are read straight from
  their Parquet part files at $PINLANDING_DATA_DIR/warehouse/<schema>.db/<table>/.
- `connect` (the shared warehouse) and `cluster` (a shared metastore, storage the driver may not
  see as local files): through the target's Spark session, i.e. the metastore's own answer.
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


def reads_files(target: str | None = None) -> bool:
    """True when the target is the embedded warehouse, whose Parquet files this process can read."""
    from pinlanding.warehouse import is_embedded

    return is_embedded(target)


def mart_location(name: str, target: str | None = None) -> str:
    """Where `name` is read from, for messages."""
    if reads_files(target):
        return str(warehouse_table_path(name))
    from pinlanding.warehouse import target_name

    return f"{target_schema()}.{name} (target {target_name(target)})"


def read_mart(name: str, columns: list[str] | None = None, target: str | None = None) -> pd.DataFrame:
    """The table as a DataFrame; list columns come back as numpy arrays of values/dicts."""
    if reads_files(target):
        return read_mart_files(name, columns)
    return read_mart_spark(name, columns, target)


def read_mart_spark(name: str, columns: list[str] | None = None, target: str | None = None) -> pd.DataFrame:
    """The table through the target's Spark session (Connect or cluster): the metastore says where
    it lives, the executors read it, Arrow brings it here."""
    from pinlanding.warehouse import spark_session

    spark = spark_session(target)
    table = f"{target_schema()}.{name}"
    if not spark.catalog.tableExists(table):
        raise MartNotFoundError(f"table {table} not found in the warehouse (has the pipeline built it?)")
    frame = spark.table(table)
    frame = frame.select(*columns) if columns else frame
    # Same shapes as the Parquet reader: list columns as numpy arrays of values/dicts.
    return frame.toArrow().to_pandas()


def read_mart_files(name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The local target's table from its Parquet directory, without Spark.

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
