"""SparkSessionAdapter: dbt-spark's adapter with the `session` Python submission method."""

from __future__ import annotations

from typing import Any, Dict, Type

from dbt.adapters.base import PythonJobHelper
from dbt.adapters.base.impl import AdapterTrackingRelationInfo
from dbt.adapters.spark.connections import SparkConnectionMethod
from dbt.adapters.spark.impl import SparkAdapter

from dbt.adapters.spark_session.__version__ import version
from dbt.adapters.spark_session.connections import ADAPTER_TYPE, SparkSessionConnectionManager
from dbt.adapters.spark_session.python_submissions import SessionPythonJobHelper


class SparkSessionAdapter(SparkAdapter):
    ConnectionManager = SparkSessionConnectionManager  # type: ignore[assignment]

    @property
    def default_python_submission_method(self) -> str:
        # Models need no `submission_method` config: on a session profile they run in-process,
        # elsewhere (and unchanged under dbt-databricks) the upstream default applies.
        if self.config.credentials.method == SparkConnectionMethod.SESSION:
            return "session"
        return super().default_python_submission_method

    @property
    def python_submission_helpers(self) -> Dict[str, Type[PythonJobHelper]]:
        return {**super().python_submission_helpers, "session": SessionPythonJobHelper}

    def generate_python_submission_response(self, submission_result: Any):
        return self.connections.get_response(None)

    @classmethod
    def get_adapter_run_info(cls, config) -> AdapterTrackingRelationInfo:
        # dbt derives the module from the class name ("sparksession"); ours is spark_session.
        from dbt.adapters.__about__ import version as base_version

        return AdapterTrackingRelationInfo(
            adapter_name=ADAPTER_TYPE,
            base_adapter_version=base_version,
            adapter_version=version,
            model_adapter_details=cls._get_adapter_specific_run_info(config),
        )
