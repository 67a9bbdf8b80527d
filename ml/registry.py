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


def champion_text_max_tokens(client=None, name: str = REGISTERED_MODEL, alias: str = CHAMPION_ALIAS) -> int | None:
    """The MiniLM token limit the champion was trained (and so scores) with, from its training
    run's `text_max_tokens` param; None when there is no champion or its run did not log one.
    The text-feature store must be built at this limit for scoring to read it."""
    from mlflow import MlflowClient

    client = client or MlflowClient()
    version = champion_version(client, name=name, alias=alias)
    if version is None or not version.run_id:
        return None
    value = client.get_run(version.run_id).data.params.get("text_max_tokens")
    return int(value) if value is not None else None
