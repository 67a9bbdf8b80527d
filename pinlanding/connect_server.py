"""The shared warehouse: one Spark Connect server that owns the metastore and the warehouse directory.

Embedded Derby admits one process at a time, so with the `local` target a running pipeline locks
everyone else out. `make warehouse` starts a Spark Connect server (shipped in the pyspark wheel)
with the `local` target's static settings; every client (`pinlanding run`, `dbt build`/`dbt show`,
the dashboard, a notebook) then talks to it over gRPC on 127.0.0.1 with the `connect` target, and
any number of them can work at once. The server is started with Spark's own `sbin` scripts, which
write its pid and log under the data directory; `make warehouse-stop` stops it by that pid.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pinlanding.settings import data_dir, pin_environment

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
IDENT = "pinlanding"  # SPARK_IDENT_STRING: names the pid and log files
DEFAULT_PORT = 15002


def port() -> int:
    return int(os.environ.get("PINLANDING_CONNECT_PORT", DEFAULT_PORT))


def remote_url(port_: int | None = None) -> str:
    return f"sc://127.0.0.1:{port_ or port()}"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def server_dir() -> Path:
    """Where the server's pid and log files live (the data directory it serves)."""
    return data_dir()


def pid_file() -> Path:
    return server_dir() / f"spark-{IDENT}-{SERVER_CLASS}-1.pid"


def log_files() -> list[Path]:
    return sorted(server_dir().glob(f"spark-{IDENT}-{SERVER_CLASS}-1-*.out"))


@dataclass
class ServerStatus:
    pid: int | None
    running: bool
    accepting: bool
    url: str


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _accepting(port_: int, timeout: float = 0.5) -> bool:
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex(("127.0.0.1", port_)) == 0


def status() -> ServerStatus:
    pid = None
    if pid_file().is_file():
        text = pid_file().read_text().strip()
        pid = int(text) if text.isdigit() else None
    running = pid is not None and _pid_alive(pid)
    return ServerStatus(pid, running, running and _accepting(port()), remote_url())


def server_conf(target: str = "local") -> dict[str, str]:
    """The embedded target's static settings, plus the gRPC endpoint on loopback."""
    from pinlanding.warehouse import spark_settings

    conf = dict(spark_settings(target))
    conf.pop("spark.app.name", None)
    conf.update({
        "spark.app.name": "pinlanding-warehouse",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port()),
        # Python workers (mapInPandas in the Python models) run the venv's interpreter.
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    })
    return conf


def _env() -> dict[str, str]:
    home = spark_home()
    env = dict(os.environ, SPARK_HOME=str(home), SPARK_PID_DIR=str(server_dir()),
               SPARK_LOG_DIR=str(server_dir()), SPARK_IDENT_STRING=IDENT,
               PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1")
    env.pop("SPARK_NO_DAEMONIZE", None)  # set, the sbin script would run in the foreground and block
    env.pop("SPARK_REMOTE", None)  # the server itself is a classic Spark application
    return env


def start(timeout: float = 180.0) -> ServerStatus:
    """Start the server (unless it already runs) and return once it accepts connections."""
    pin_environment()
    current = status()
    if current.running and current.accepting:
        return current
    if current.running:
        raise RuntimeError(f"a warehouse server (pid {current.pid}) is running but not accepting on "
                           f"{current.url}; stop it with `make warehouse-stop` (log: {log_files()})")
    if _accepting(port()):
        raise RuntimeError(f"port {port()} on 127.0.0.1 is taken by another process: set PINLANDING_CONNECT_PORT")
    pid_file().unlink(missing_ok=True)  # a stale pid file from a killed server
    args = [str(spark_home() / "sbin" / "start-connect-server.sh"), "--driver-memory",
            server_conf().get("spark.driver.memory", "6g")]
    for key, value in server_conf().items():
        args += ["--conf", f"{key}={value}"]
    proc = subprocess.run(args, env=_env(), cwd=server_dir(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"start-connect-server.sh failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = status()
        if current.accepting:
            return current
        if current.pid is not None and not current.running:
            break
        time.sleep(0.5)
    tail = "".join(p.read_text(errors="replace")[-4000:] for p in log_files())
    stop()
    raise RuntimeError(f"the warehouse server did not start accepting on {remote_url()} within "
                       f"{timeout:.0f}s; its log:\n{tail}")


def stop(timeout: float = 60.0) -> bool:
    """Stop the server by its pid file; True if one was running."""
    current = status()
    if not current.running:
        pid_file().unlink(missing_ok=True)
        return False
    subprocess.run([str(spark_home() / "sbin" / "stop-connect-server.sh")], env=_env(), cwd=server_dir(),
                   capture_output=True, text=True)
    deadline = time.monotonic() + timeout
    while _pid_alive(current.pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    if _pid_alive(current.pid):  # did not stop in time: it holds nothing we cannot recover
        os.kill(current.pid, 9)
    pid_file().unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pinlanding.connect_server", description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    if args.action == "start":
        st = start()
        print(f"warehouse: Spark Connect server pid {st.pid} on {st.url} "
              f"(data: {data_dir()}; log: {', '.join(map(str, log_files()))})")
        print(f"use it: export PINLANDING_TARGET=connect PINLANDING_CONNECT_PORT={port()}")
    elif args.action == "stop":
        print("warehouse: stopped" if stop() else "warehouse: not running")
    else:
        st = status()
        print(f"warehouse: {'running' if st.running else 'not running'}"
              f"{f' (pid {st.pid}, accepting: {st.accepting})' if st.pid else ''} on {st.url}")
        return 0 if st.accepting else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
