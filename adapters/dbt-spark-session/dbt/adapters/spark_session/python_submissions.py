"""Run a compiled dbt Python model in the SparkSession of the dbt process."""

from __future__ import annotations

import linecache
import re
import shutil
import traceback
from pathlib import Path
from typing import Any, Dict, List
from urllib.parse import unquote, urlsplit

from dbt.adapters.base import PythonJobHelper
from dbt.adapters.spark.connections import SparkConnectionMethod
from dbt_common.exceptions import DbtRuntimeError

from dbt.adapters.spark_session.connections import get_or_create_session

MAX_MESSAGE_CHARS = 4000  # a Py4J error's text carries the whole JVM stack trace
# dbt's py_write_table ends the compiled code with `<writer>.saveAsTable("<relation>")`.
SAVE_AS_TABLE = re.compile(r"""\.saveAsTable\(\s*["']([^"']+)["']\s*\)""")


def describe_error(exc: BaseException) -> str:
    """`Type: [ERROR_CLASS] message` for any exception.

    PySpark's exceptions have an empty repr() (`SparkRuntimeException()`) and sometimes an empty
    str(); their error class (condition) and message come from getCondition()/getErrorClass() and
    getMessage(), which JVM-backed ones fetch from the JVM.
    """
    def call(name: str):
        method = getattr(exc, name, None)
        if not callable(method):
            return None
        try:
            return method()
        except Exception:  # noqa: BLE001 - a dead JVM must not hide the original error
            return None

    condition = call("getCondition") or call("getErrorClass")
    # str() of a JVM error appends the whole JVM stack trace: the head is the message
    message = (call("getMessage") or str(exc) or "").split("\n\nJVM stacktrace:")[0].strip()
    if not message and exc.args:
        message = " ".join(str(a) for a in exc.args).strip()
    if condition and f"[{condition}]" not in message:
        message = f"[{condition}] {message}".strip()
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + " ..."
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def _local_path(location: str) -> Path | None:
    parts = urlsplit(location)
    if parts.scheme in ("", "file"):
        return Path(unquote(parts.path))
    return None


def remove_orphaned_locations(spark, relations: List[str]) -> List[Path]:
    """Delete the default location of each `schema.table` that the metastore does not know.

    Spark writes a managed table's files before registering it, and dbt drops the old table
    first: a process killed mid-write leaves the directory without a table, and every later
    saveAsTable of that name fails with LOCATION_ALREADY_EXISTS. Such a directory is never a
    readable table, so it is removed before the model writes (local filesystem only).
    """
    removed = []
    for relation in relations:
        schema, _, table = relation.replace("`", "").rpartition(".")
        if not schema or not spark.catalog.databaseExists(schema) or spark.catalog.tableExists(f"{schema}.{table}"):
            continue
        rows = spark.sql(f"describe database `{schema}`").collect()
        location = next((r[1] for r in rows if str(r[0]).lower() == "location"), None)
        root = _local_path(location) if location else None
        target = root / table.lower() if root else None
        if target is not None and target.is_dir():
            shutil.rmtree(target)
            removed.append(target)
    return removed


class SessionPythonJobHelper(PythonJobHelper):
    """The compiled code is the same notebook source dbt-spark uploads to Databricks: it defines
    `model(dbt, session)`, calls it with the global `spark`, and writes the returned DataFrame
    with `saveAsTable`. Here it is executed with `spark` bound to the in-process session."""

    def __init__(self, parsed_model: Dict, credentials: Any) -> None:
        if credentials.method != SparkConnectionMethod.SESSION:
            raise DbtRuntimeError(
                "submission_method 'session' needs a profile with `method: session`"
                f" (got {credentials.method!r})."
            )
        self.credentials = credentials
        self.relation_name = f"{parsed_model['schema']}.{parsed_model['alias']}"

    def submit(self, compiled_code: str) -> Any:
        spark = get_or_create_session(self.credentials.server_side_parameters)
        namespace: Dict[str, Any] = {"spark": spark, "__name__": "__dbt_python_model__"}
        filename = f"<dbt python model {self.relation_name}>"
        code = compile(compiled_code, filename, "exec")
        # Let tracebacks show the model's source lines.
        linecache.cache[filename] = (len(compiled_code), None, compiled_code.splitlines(True), filename)
        try:
            targets = SAVE_AS_TABLE.findall(compiled_code)
            if targets and spark is not None:
                remove_orphaned_locations(spark, targets)
            exec(code, namespace)  # noqa: S102 - dbt-compiled model code, as on Databricks
        except Exception as exc:
            # Keep the frames of the model's own code: they are what the author needs to see.
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<dbt python model")]
            where = "".join(traceback.format_list(frames[-3:]))
            raise DbtRuntimeError(f"Python model {self.relation_name} failed: {describe_error(exc)}\n{where}") from exc
        return None
