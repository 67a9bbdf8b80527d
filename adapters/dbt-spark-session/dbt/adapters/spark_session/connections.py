"""Credentials and connection manager: dbt-spark's, with one SparkSession built once and checked."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from dbt.adapters.contracts.connection import Connection
from dbt.adapters.spark.connections import (
    SparkConnectionManager,
    SparkConnectionMethod,
    SparkCredentials,
)
from dbt.adapters.spark.session import Connection as SessionConnectionBase
from dbt.adapters.spark.session import Cursor as SessionCursorBase
from dbt_common.exceptions import DbtRuntimeError
from pyspark.errors import AnalysisException

ADAPTER_TYPE = "spark_session"


@dataclass
class SparkSessionCredentials(SparkCredentials):
    @property
    def type(self) -> str:
        return ADAPTER_TYPE


def get_or_create_session(server_side_parameters: dict[str, str]):
    """Return the process's SparkSession, creating it with the profile's settings.

    With `spark.remote` in the profile (or SPARK_REMOTE in the environment) this is a Spark Connect
    session to a server that owns the metastore and warehouse: its static settings were fixed when
    the server started, so only runtime SQL settings are applied here.

    Otherwise static settings (warehouse dir, metastore URL, driver memory, master) only apply when
    the session is created. If one already runs in this process with different static values, the
    profile would be silently ignored, so that is an error instead.
    """
    remote = server_side_parameters.get("spark.remote") or os.environ.get("SPARK_REMOTE")
    if remote:
        return _connect_session(remote, server_side_parameters)

    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    # Python workers (pandas UDFs, mapInPandas) must run this interpreter, not `python3` on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the driver stays on loopback
    if SparkContext._active_spark_context is None:
        builder = SparkSession.builder.enableHiveSupport()
        for key, value in server_side_parameters.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()

    session = SparkSession.builder.getOrCreate()  # the running one (no options: nothing to re-apply)
    spark_conf = session.sparkContext.getConf()
    mismatched = {
        key: (value, spark_conf.get(key))
        for key, value in server_side_parameters.items()
        if _is_static(key) and spark_conf.contains(key) and not _same_setting(value, spark_conf.get(key))
    }
    if mismatched:
        lines = "\n".join(f"  {k}: profile={v!r} running={r!r}" for k, (v, r) in mismatched.items())
        raise DbtRuntimeError(
            "A SparkSession is already running in this process with different static settings;"
            f" the profile's values cannot take effect:\n{lines}"
        )
    for key, value in server_side_parameters.items():
        if not _is_static(key) and session.conf.get(key, None) != value:
            session.conf.set(key, value)  # runtime SQL settings can still be applied
    return session


def _connect_session(url: str, server_side_parameters: dict[str, str]):
    """A Spark Connect session (no SparkContext, no JVM in this process)."""
    from pyspark.sql import SparkSession

    # Every later `SparkSession.builder.getOrCreate()` in this process (dbt-spark, Python models,
    # the CLI) must return this same remote session, never start a local JVM beside it.
    os.environ["SPARK_REMOTE"] = url
    session = SparkSession.builder.remote(url).getOrCreate()
    for key, value in server_side_parameters.items():
        if key == "spark.remote" or _is_static(key):
            continue  # fixed by the server at its start; setting them only logs a warning per call
        if session.conf.get(key, None) != value:
            session.conf.set(key, value)
    return session


def is_connect_session(session) -> bool:
    """True for a Spark Connect client session (which has no SparkContext)."""
    try:
        from pyspark.sql.connect.session import SparkSession as RemoteSparkSession
    except ImportError:  # pyspark without the connect extra
        return False
    return isinstance(session, RemoteSparkSession)


def _same_setting(wanted: str, running: str) -> bool:
    """Spark stores some settings rewritten: paths qualified (file:/abs), Java options extended."""
    if wanted == running or wanted in running:
        return True
    strip = lambda v: os.path.normpath(v.removeprefix("file:"))  # noqa: E731
    return strip(wanted) == strip(running)


def _is_static(key: str) -> bool:
    """Settings fixed at session creation (everything but runtime SQL confs)."""
    runtime_prefixes = ("spark.sql.",)
    static_sql = ("spark.sql.warehouse.dir", "spark.sql.catalogImplementation", "spark.sql.extensions")
    return key in static_sql or not key.startswith(runtime_prefixes)


class SparkSessionConnectionManager(SparkConnectionManager):
    TYPE = ADAPTER_TYPE

    @classmethod
    def open(cls, connection: Connection) -> Connection:
        creds = connection.credentials
        if creds.method == SparkConnectionMethod.SESSION:
            # Create the session once, with every static setting, before dbt-spark's cursor
            # (which calls builder.getOrCreate() per statement) can create it without them.
            get_or_create_session(creds.server_side_parameters)
        connection = super().open(connection)
        if creds.method == SparkConnectionMethod.SESSION and connection.handle is not None:
            # The session holds every setting now. dbt-spark's cursor would re-apply them on each
            # statement (a no-op for static ones, plus a warning each time): give it none.
            # dbt-spark's cursor also rebuilds the session per statement with enableHiveSupport(),
            # which on a Connect session logs CANNOT_MODIFY_STATIC_CONFIG every time: bind the
            # cursor to the session made above instead.
            connection.handle.handle = SessionHandle(get_or_create_session(creds.server_side_parameters))
            # dbt-spark formats seed values into SQL as '{value}': a quote breaks the statement and
            # an empty cell becomes the string 'None'. Bind proper literals instead.
            connection.handle._fix_binding = sql_literal
        return connection


def sql_literal(value):
    """A Spark SQL literal for a seed value: NULL, a number, or an escaped string."""
    import datetime as dt
    import decimal

    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, decimal.Decimal)):
        return repr(float(value))
    if isinstance(value, dt.datetime):
        value = value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    escaped = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


class SessionCursor(SessionCursorBase):
    """dbt-spark's session cursor, bound to one session instead of a builder per statement."""

    def __init__(self, session) -> None:
        super().__init__()
        self._session = session

    def execute(self, sql: str, *parameters) -> None:
        if parameters:
            sql = sql % parameters
        try:
            self._df = self._session.sql(sql)
        except AnalysisException as exc:
            raise DbtRuntimeError(str(exc)) from exc


class SessionHandle(SessionConnectionBase):
    def __init__(self, session) -> None:
        super().__init__()
        self.session = session

    def cursor(self) -> SessionCursor:
        return SessionCursor(self.session)
