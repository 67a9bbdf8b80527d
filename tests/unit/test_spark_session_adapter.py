"""The `spark_session` adapter: a dbt adapter plugin that dbt loads like any other."""

from pathlib import Path

import pytest
from dbt.adapters.factory import load_plugin

from dbt.adapters.spark_session.connections import _is_static, sql_literal

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_dbt_loads_the_plugin_with_spark_as_parent():
    from dbt.adapters.spark_session import Plugin

    load_plugin("spark_session")
    assert Plugin.dependencies == ["spark"]
    assert Plugin.adapter.type() == "spark_session"
    assert Plugin.credentials.__name__ == "SparkSessionCredentials"


def test_session_method_is_registered_next_to_the_databricks_ones():
    from dbt.adapters.spark_session.impl import SparkSessionAdapter
    from dbt.adapters.spark_session.python_submissions import SessionPythonJobHelper

    helpers = SparkSessionAdapter.python_submission_helpers.fget(object.__new__(SparkSessionAdapter))
    assert helpers["session"] is SessionPythonJobHelper
    assert {"job_cluster", "all_purpose_cluster"} <= set(helpers)


@pytest.mark.parametrize("key,static", [
    ("spark.sql.warehouse.dir", True),
    ("spark.hadoop.javax.jdo.option.ConnectionURL", True),
    ("spark.driver.memory", True),
    ("spark.sql.shuffle.partitions", False),
    ("spark.sql.session.timeZone", False),
])
def test_static_settings_are_told_apart_from_runtime_ones(key, static):
    assert _is_static(key) is static


def test_profile_renders_the_data_dir_into_static_settings(monkeypatch, tmp_path):
    from pinlanding import warehouse

    monkeypatch.setenv("PINLANDING_DATA_DIR", str(tmp_path))
    warehouse.spark_settings.cache_clear()
    params = warehouse.spark_settings("local")
    warehouse.spark_settings.cache_clear()
    assert params["spark.sql.warehouse.dir"] == f"{tmp_path}/warehouse"
    assert params["spark.hadoop.javax.jdo.option.ConnectionURL"] == (
        f"jdbc:derby:;databaseName={tmp_path}/metastore_db;create=true")
    assert params["spark.sql.catalogImplementation"] == "hive"


def test_python_model_files_are_portable_to_dbt_databricks():
    """Model files carry no session-only config or imports: the submission method comes from the
    adapter's default, so dbt-databricks runs the same files with its own default."""
    models = sorted((PROJECT_DIR / "python_models").rglob("*.py"))
    assert models
    for path in models:
        source = path.read_text()
        assert "def model(dbt, session)" in source
        assert "submission_method" not in source
        assert "spark_session" not in source


def test_session_helper_runs_compiled_code_with_spark_bound(monkeypatch):
    from types import SimpleNamespace

    import dbt.adapters.spark_session.python_submissions as submissions

    fake_spark = []  # the compiled code only sees it as the global `spark`
    monkeypatch.setattr(submissions, "get_or_create_session", lambda params: fake_spark)
    helper = submissions.SessionPythonJobHelper({"schema": "s", "alias": "m"},
                                                SimpleNamespace(method="session", server_side_parameters={}))
    helper.submit("spark.append('written by the model')\n")
    assert fake_spark == ["written by the model"]


def test_session_helper_reports_the_models_own_frames(monkeypatch):
    from types import SimpleNamespace

    from dbt_common.exceptions import DbtRuntimeError

    import dbt.adapters.spark_session.python_submissions as submissions

    monkeypatch.setattr(submissions, "get_or_create_session", lambda params: None)
    helper = submissions.SessionPythonJobHelper({"schema": "s", "alias": "m"},
                                                SimpleNamespace(method="session", server_side_parameters={}))
    with pytest.raises(DbtRuntimeError) as err:
        helper.submit("def model(dbt, session):\n    return 1 / 0\n\nmodel(None, spark)\n")
    assert "ZeroDivisionError" in str(err.value) and "return 1 / 0" in str(err.value)


def test_session_helper_needs_a_session_profile():
    from types import SimpleNamespace

    from dbt_common.exceptions import DbtRuntimeError

    from dbt.adapters.spark_session.python_submissions import SessionPythonJobHelper

    with pytest.raises(DbtRuntimeError, match="method: session"):
        SessionPythonJobHelper({"schema": "s", "alias": "m"}, SimpleNamespace(method="thrift"))


def test_seed_values_become_sql_literals_not_quoted_python_reprs():
    """Upstream formats seed cells as '{value}': a quote breaks the insert, an empty cell becomes 'None'."""
    import datetime as dt

    assert sql_literal(None) == "NULL"
    assert sql_literal("Men's Shirts") == "'Men\\'s Shirts'"
    assert sql_literal("back\\slash") == "'back\\\\slash'"
    assert sql_literal(True) == "true"
    assert sql_literal(3) == "3.0"
    assert sql_literal(dt.datetime(2026, 11, 1, 12, 30)) == "'2026-11-01 12:30:00.000'"


# ----------------------------------------------------------------------------- errors and recovery


def test_describe_error_gives_pyspark_errors_their_class_and_message():
    """PySpark exceptions have an empty repr(): the user must still get the error class and text."""
    from pyspark.errors import PySparkValueError

    from dbt.adapters.spark_session.python_submissions import describe_error

    exc = PySparkValueError(errorClass="CANNOT_BE_NONE", messageParameters={"arg_name": "batch"})
    assert repr(exc) == "PySparkValueError()"  # what the wrapper used to print
    assert describe_error(exc) == "PySparkValueError: [CANNOT_BE_NONE] Argument `batch` cannot be None."
    assert describe_error(ValueError("plain")) == "ValueError: plain"
    assert describe_error(RuntimeError()) == "RuntimeError"


REAL_SPARK_SCRIPT = r'''
import json, sys
from pathlib import Path
from types import SimpleNamespace

from dbt_common.exceptions import DbtRuntimeError
from dbt.adapters.spark_session.python_submissions import SessionPythonJobHelper

warehouse = Path(sys.argv[1])
params = {"spark.master": "local[1]", "spark.ui.enabled": "false", "spark.driver.memory": "1g",
          "spark.sql.catalogImplementation": "in-memory", "spark.sql.warehouse.dir": str(warehouse),
          "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
creds = SimpleNamespace(method="session", server_side_parameters=params)
out = {}

def submit(alias, code):
    try:
        SessionPythonJobHelper({"schema": "default", "alias": alias}, creds).submit(code)
        return None
    except DbtRuntimeError as exc:
        return str(exc)

# 1. an error raised in the JVM (SparkRuntimeException, whose repr() is empty)
out["jvm_error"] = submit("boom", "spark.sql(\"select raise_error('disk on fire')\").collect()\n")

# 2. a killed write's leftover: the table directory exists, the metastore entry does not
write = 'spark.range(3).write.mode("overwrite").format("parquet").saveAsTable("default.{}")\n'
for name in ("raw_exec", "via_helper"):
    orphan = warehouse / name
    orphan.mkdir(parents=True)
    (orphan / "part-00000-dead.parquet").write_bytes(b"half a file")
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
try:  # what any later run hit before the fix
    exec(write.format("raw_exec"), {"spark": spark})
    out["raw_exec"] = None
except Exception as exc:
    out["raw_exec"] = type(exc).__name__ + " " + str(exc)[:300]
out["via_helper"] = submit("via_helper", write.format("via_helper"))
out["via_helper_rows"] = spark.table("default.via_helper").count()
print("RESULT " + json.dumps(out))
'''


@pytest.mark.integration
def test_python_model_wrapper_on_real_spark_reports_jvm_errors_and_writes_over_a_killed_write(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    proc = subprocess.run([sys.executable, "-c", REAL_SPARK_SCRIPT, str(tmp_path / "warehouse")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))
    jvm_error = out["jvm_error"]
    assert "Python model default.boom failed: SparkRuntimeException: [USER_RAISED_EXCEPTION]" in jvm_error
    assert "disk on fire" in jvm_error and "JVM stacktrace" not in jvm_error
    assert "LOCATION_ALREADY_EXISTS" in out["raw_exec"]  # the wedge, reproduced without the wrapper
    assert out["via_helper"] is None and out["via_helper_rows"] == 3
