"""dbt adapter `spark_session`: dbt-spark, plus Python models run in the in-process SparkSession.

Upstream dbt-spark submits Python models only to Databricks (dbt-spark issues #415, #1062). This
adapter inherits everything from dbt-spark (macros, materializations, relations) and adds the
`session` submission method, the default whenever the profile uses `method: session`.
"""

from dbt.adapters.base import AdapterPlugin

from dbt.adapters.spark_session.connections import (  # noqa: F401
    SparkSessionConnectionManager,
    SparkSessionCredentials,
)
from dbt.adapters.spark_session.impl import SparkSessionAdapter
from dbt.include import spark_session

Plugin = AdapterPlugin(
    adapter=SparkSessionAdapter,  # type: ignore[arg-type]
    credentials=SparkSessionCredentials,
    include_path=spark_session.PACKAGE_PATH,
    dependencies=["spark"],
)
