"""The SparkSession every non-dbt step uses, built from the same profiles.yml target as dbt."""

from __future__ import annotations

import os
from functools import lru_cache

from pinlanding.settings import PROJECT_DIR, pin_environment


def target_name(target: str | None = None) -> str:
    """The profiles.yml target in use: the argument, $PINLANDING_TARGET, or the profile default."""
    return target or os.environ.get("PINLANDING_TARGET") or "local"


def is_embedded(target: str | None = None) -> bool:
    """True for an in-process Spark on this machine (local master, not a Connect client): its
    warehouse is this machine's files and its Derby metastore admits one process at a time."""
    params = spark_settings(target)
    return "spark.remote" not in params and params.get("spark.master", "local").startswith("local")


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
    name = target_name(target)
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
