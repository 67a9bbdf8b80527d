"""MLflow defaults: a SQLite tracking + registry store and artifacts under the data directory.
MLFLOW_TRACKING_URI (and MLFLOW_REGISTRY_URI) override them."""

from __future__ import annotations

import os

from pinlanding.settings import data_dir

PLATFORM_EXPERIMENT = "pinlanding-platform"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{data_dir() / 'mlflow.db'}"


def artifact_root() -> str:
    return (data_dir() / "mlartifacts").as_uri()


def configure():
    """Point the mlflow client at the project's store; returns the mlflow module."""
    import mlflow

    (data_dir()).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def get_or_create_experiment(name: str) -> str:
    mlflow = configure()
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None if os.environ.get("MLFLOW_TRACKING_URI") else f"{artifact_root()}/{name}"
    return mlflow.create_experiment(name, artifact_location=location)


def log_platform_run(summary: dict, checks: list[str], tables: dict | None = None,
                     run_name: str = "pipeline-run") -> str:
    """Record one pipeline run: load counts, rates, check results, and small tables as JSON."""
    mlflow = configure()
    experiment_id = get_or_create_experiment(PLATFORM_EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.log_params({k: summary[k] for k in ("batch_id", "feed_path") if k in summary})
        mlflow.log_metrics({k: float(v) for k, v in summary.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
        mlflow.log_dict(summary, "catalog_load_summary.json")
        mlflow.log_text("\n".join(checks) + "\n", "quality_checks.txt")
        for name, table in (tables or {}).items():
            mlflow.log_dict(table, name)
        return run.info.run_id
