"""Remove what a killed write leaves in the local warehouse, so the next run needs no repair.

Spark writes a managed Parquet table (saveAsTable, CTAS: dbt's table models, Python models, ingest)
by writing its directory first and registering it in the metastore last, and dbt drops a table
before rebuilding it. A process killed in between leaves:

- a table directory with no metastore entry: every later CREATE of that table fails with
  LOCATION_ALREADY_EXISTS (the observed "wedged warehouse");
- `_temporary/` (Hadoop committer) or `.spark-staging-*` in a registered table's directory: the
  committer of the next append into that table would move the dead job's committed task files in
  with its own.

Neither is ever a table anyone can read, so both are deleted. Only under the data directory's lock
(pinlanding.locking): then no other writer can be between its write and its registration.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

LEFTOVER_PREFIXES = ("_temporary", ".spark-staging-")


def orphaned_paths(spark, warehouse_dir: Path) -> list[Path]:
    """Table directories the metastore does not know, and job leftovers inside registered ones."""
    if not warehouse_dir.is_dir():
        return []
    databases = {r[0].lower() for r in spark.sql("show databases").collect()}
    found = []
    for db_dir in sorted(warehouse_dir.glob("*.db")):
        database = db_dir.name[: -len(".db")].lower()
        if database not in databases or not db_dir.is_dir():
            continue  # not a database of this metastore: not ours to judge
        tables = {r.tableName.lower() for r in spark.sql(f"show tables in `{database}`").collect()
                  if not r.isTemporary}
        for child in sorted(db_dir.iterdir()):
            if not child.is_dir():
                continue
            if child.name.lower() not in tables:
                found.append(child)
            else:
                found += [p for p in sorted(child.iterdir()) if p.name.startswith(LEFTOVER_PREFIXES)]
    return found


def sweep_warehouse(spark, warehouse_dir: Path) -> list[Path]:
    """Delete `orphaned_paths` (call with the data directory's lock held); returns them."""
    removed = orphaned_paths(spark, warehouse_dir)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    if removed:
        print(f"recovered the warehouse after an interrupted run: removed "
              f"{', '.join(str(p.relative_to(warehouse_dir)) for p in removed)}", file=sys.stderr)
    return removed
