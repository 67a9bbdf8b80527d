"""The dual encoder's place in the MLflow model registry: its name, the alias that serves, and
the one way to ask which version holds it."""

from __future__ import annotations

REGISTERED_MODEL = "pinlanding-dual-encoder"
CHAMPION_ALIAS = "champion"


def champion_version(client=None, name: str = REGISTERED_MODEL, alias: str = CHAMPION_ALIAS):
    """The ModelVersion holding `alias`, or None when the model or the alias does not exist yet.

    Any other failure (registry unreachable, permissions, a corrupt store) raises: a registry that
    cannot be read must never look like "no champion", which would promote any candidate."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    client = client or MlflowClient()
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    if alias not in (model.aliases or {}):
        return None
    return client.get_model_version_by_alias(name, alias)
