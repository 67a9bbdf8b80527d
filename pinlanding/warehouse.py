"""The SparkSession every non-dbt step uses, built from the same profiles.yml target as dbt."""

from __future__ import annotations

import os
from functools import lru_cache

from pinlanding.settings import PROJECT_DIR, pin_environment


@lru_cache(maxsize=None)
def spark_settings(target: str | None = None) -> dict[str, str]:
    """`server_side_parameters` of the profile target, rendered by dbt (env_var() and all)."""
    from dbt.config.profile import read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(dict(os.environ))  # env_var() reads the invocation's environment

    profiles_dir = os.environ.get("DBT_PROFILES_DIR", str(PROJECT_DIR))
    raw = read_profile(profiles_dir)["pinlanding"]
    rendered = ProfileRenderer({}).render_data(raw)
    name = target or rendered.get("target", "local")
    output = rendered["outputs"][name]
    if output.get("method") != "session":
        raise ValueError(f"profile target {name!r} is not a Spark session target")
    params = {str(k): str(v) for k, v in output.get("server_side_parameters", {}).items()}
    params["spark.sql.ansi.enabled"] = "false"  # as dbt-spark sets it for its sessions
    return params


def spark_session(target: str | None = None):
    """Create (once per process) or return the SparkSession for the profile target."""
    from dbt.adapters.spark_session.connections import get_or_create_session

    pin_environment()
    return get_or_create_session(spark_settings(target))
