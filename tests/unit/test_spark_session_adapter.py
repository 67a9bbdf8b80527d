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
