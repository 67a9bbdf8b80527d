"""One writer per data directory, and clean-up after writers that died.

`pinlanding run` and every step that writes (ingest, dbt, train, check, publish) hold an exclusive
OS-level lock (flock, through `filelock`) on `<data dir>/.pinlanding.lock` for their whole life. The
kernel drops it when the process dies, however it dies (kill -9 included), so a crashed run never
leaves a lock for a person to remove. The holder's pid and command go to a side file, only for the
message a second process prints: taking a filelock truncates the lock file itself.

Once the lock is held nothing else may be writing this data directory, so whatever a killed run left
behind can be removed safely: see `stop_stale_llm_servers` here and `pinlanding.recovery`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

LOCK_NAME = ".pinlanding.lock"
HOLDER_NAME = ".pinlanding.lock.holder.json"
BUSY_EXIT_CODE = 75  # EX_TEMPFAIL: try again later


class RunLockBusy(RuntimeError):
    """Another pinlanding process holds the data directory's lock."""


def _holder(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / HOLDER_NAME).read_text())
    except (OSError, ValueError):
        return {}


def busy_message(data_dir: Path, waited: float) -> str:
    holder = _holder(data_dir)
    pid = holder.get("pid")
    who = (f"pid {pid} (`{holder.get('command', '?')}`, started {holder.get('started_at', '?')})"
           if pid else "another process (pid not recorded yet)")
    wait_hint = (f"wait for it to finish (`tail --pid={pid} -f /dev/null`), " if pid else "wait for it to finish, ")
    return (f"{data_dir} is in use by {who}{f' after waiting {waited:.0f}s' if waited else ''}: "
            f"only one pinlanding process may write a data directory at a time. Nothing was changed. "
            f"{wait_hint[0].upper()}{wait_hint[1:]}or queue behind it with `pinlanding --wait-lock SECONDS ...` "
            f"(or PINLANDING_LOCK_WAIT).")


@contextmanager
def run_lock(data_dir: Path, command: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the data directory's exclusive lock; RunLockBusy when still taken after `wait` seconds."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(data_dir / LOCK_NAME), timeout=max(wait, 0.0))
    try:
        lock.acquire()
    except Timeout:
        raise RunLockBusy(busy_message(data_dir, wait)) from None
    holder = data_dir / HOLDER_NAME
    try:
        info = {"pid": os.getpid(), "command": command, "host": socket.gethostname(),
                "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
        tmp = holder.with_name(f"{holder.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, holder)
        yield
    finally:
        if _holder(data_dir).get("pid") == os.getpid():
            holder.unlink(missing_ok=True)
        lock.release()


# ----------------------------------------------------------------------------- stale processes


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the parenthesised command


def _is_python(pid: int | None) -> bool:
    args = _cmdline(pid) if pid else []
    return bool(args) and "python" in Path(args[0]).name


def stale_llm_servers(data_dir: Path) -> list[int]:
    """llama.cpp servers serving this data directory's model whose parent Python process is gone.

    A server is started (ml/llm_server.py) by the pipeline process with the model assembled under
    `<data dir>/models/`; a kill -9 of that process orphans it (it is re-parented to init or a
    subreaper, never to another Python). Linux /proc; elsewhere nothing is found.
    """
    models = str(data_dir / "models") + os.sep
    stale = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        args = _cmdline(pid)
        if "llama_cpp.server" not in args or "--model" not in args:
            continue
        model = args[args.index("--model") + 1] if args.index("--model") + 1 < len(args) else ""
        if model.startswith(models) and not _is_python(_parent(pid)):
            stale.append(pid)
    return stale


def stop_stale_llm_servers(data_dir: Path, grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, the orphaned llama.cpp servers of a killed run (call under the lock)."""
    pids = stale_llm_servers(data_dir)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for pid in pids:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if pids:
        print(f"stopped {len(pids)} llama.cpp server(s) left by a killed run: pid {', '.join(map(str, pids))}",
              file=sys.stderr)
    return pids
