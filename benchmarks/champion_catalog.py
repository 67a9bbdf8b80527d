"""What the matcher benchmarks start from: the registered champion and the warehouse catalog
(products, vocabulary, ground truth) it is scored on. Run after `make run`."""

from __future__ import annotations

import sys
from pathlib import Path


def champion_and_catalog(train_config: str | Path):
    """(version, unwrapped champion pyfunc, catalog, open SparkSession): the caller stops the
    session when it has read what else it needs. Exits when the warehouse vocabulary is not the
    champion's (its scores would not line up with the catalog's attributes)."""
    from ml.pyfunc import load_local, resolve_champion
    from ml.train import TrainConfig, load_catalog
    from pinlanding import settings
    from pinlanding.tracking import configure
    from pinlanding.warehouse import spark_session

    configure()
    version, model_dir = resolve_champion()
    served = load_local(model_dir)
    spark = spark_session()
    catalog = load_catalog(spark, settings.target_schema(), TrainConfig.from_yaml(train_config),
                           settings.data_dir() / "training" / "cache")
    if catalog.attribute_ids != [a["attribute_id"] for a in served.vocabulary]:
        spark.stop()
        sys.exit("the warehouse vocabulary differs from the champion's: retrain or rebuild first")
    return version, served, catalog, spark
