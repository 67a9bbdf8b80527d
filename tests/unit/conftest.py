import os
import sys

import pytest


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """A small in-process local SparkSession (in-memory catalog) for tests of SQL expressions;
    stopped at the end of the module, so a later module can build its own with other settings."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[1]").appName(f"unit-{os.getpid()}")
               .config("spark.driver.memory", os.environ.get("PINLANDING_DRIVER_MEMORY", "2g"))
               .config("spark.sql.catalogImplementation", "in-memory")
               .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("warehouse")))
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.enabled", "false").getOrCreate())
    yield session
    session.stop()
