"""Run a compiled dbt Python model in the SparkSession of the dbt process."""

from __future__ import annotations

import linecache
import traceback
from typing import Any, Dict

from dbt.adapters.base import PythonJobHelper
from dbt.adapters.spark.connections import SparkConnectionMethod
from dbt_common.exceptions import DbtRuntimeError

from dbt.adapters.spark_session.connections import get_or_create_session


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
            exec(code, namespace)  # noqa: S102 - dbt-compiled model code, as on Databricks
        except Exception as exc:
            # Keep the frames of the model's own code: they are what the author needs to see.
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<dbt python model")]
            where = "".join(traceback.format_list(frames[-3:]))
            raise DbtRuntimeError(f"Python model {self.relation_name} failed: {exc!r}\n{where}") from exc
        return None
