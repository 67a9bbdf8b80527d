"""A fault-injecting OpenAI-compatible server on loopback, for fault-injection and wire-contract tests
only (the default path uses the real llama.cpp server).

The server plays a script, one step per request; when the script is used up it plays `default`
(500 unless told otherwise). A step is a tuple, or a callable `(path, body) -> tuple`:

- ("status", code)           that HTTP error (a 429 says `retry-after-ms: 10`)
- ("retry_after", seconds)   429 with a real `Retry-After: <seconds>` header
- ("error", (code, message)) that HTTP error with this message (a provider echoing what it got)
- ("sleep", seconds)         wait, then 500: a stuck server (the client times out first)
- ("content", text)          a completion answering `text` (chat or text completion, by path)
- ("json", obj)              200 with `obj` as the JSON body (wrong schema, empty choices, ...)
- ("raw", bytes)             200, Content-Type JSON, these bytes (invalid JSON)
- ("truncated", text)        a completion whose body stops half-way and the connection closes
- ("trickle", (text, secs))  a completion sent one byte every `secs` seconds (slow tokens)
- ("die", None)              close the connection unanswered and stop listening (port closed)

Every request is recorded in `.requests` (path, JSON body, headers, monotonic arrival time), also
for a step that never answers.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chat_response(content: str) -> dict:
    return {"id": "cmpl-test", "object": "chat.completion", "created": 0, "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def text_completion_response(text: str) -> dict:
    return {"id": "cmpl-test", "object": "text_completion", "created": 0, "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "text": text}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def completion_for(path: str, text: str) -> dict:
    return chat_response(text) if path.endswith("/chat/completions") else text_completion_response(text)


def closed_port_url() -> str:
    """A loopback base URL nothing listens on (a server down from the start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class FaultServer:
    def __init__(self, script: list | None = None, default=("status", 500)):
        self.script = list(script or [])
        self.default = default
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._stopped = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # HTTP/1.0: one request per connection, so a dead server stays dead
                if server._stopped:
                    self.close_connection = True
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                with server._lock:
                    server.requests.append({"path": self.path, "body": body, "t": time.monotonic(),
                                            "headers": {k.lower(): v for k, v in self.headers.items()}})
                    step = server.script.pop(0) if server.script else server.default
                if callable(step):
                    step = step(self.path, body)
                server._play(self, *step)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _play(self, handler, kind, arg):
        if kind == "sleep":
            time.sleep(arg)
            kind, arg = "status", 500
        if kind == "die":
            handler.close_connection = True
            threading.Thread(target=self.stop, daemon=True).start()
            return
        headers = {}
        if kind in ("status", "retry_after", "error"):
            code = {"status": arg, "retry_after": 429, "error": arg[0] if kind == "error" else None}[kind]
            message = arg[1] if kind == "error" else f"injected {code}"
            payload = json.dumps({"error": {"message": message, "type": "test"}}).encode()
            if kind == "retry_after":
                headers["Retry-After"] = str(arg)
            elif code == 429:
                headers["retry-after-ms"] = "10"
        elif kind == "raw":
            code, payload = 200, arg
        elif kind == "json":
            code, payload = 200, json.dumps(arg).encode()
        elif kind in ("content", "truncated", "trickle"):
            text = arg[0] if kind == "trickle" else arg
            code, payload = 200, json.dumps(completion_for(handler.path, text)).encode()
        else:
            raise ValueError(f"unknown step {kind!r}")
        handler.send_response(code)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        try:
            if kind == "truncated":
                handler.wfile.write(payload[: len(payload) // 2])
                handler.close_connection = True
                handler.wfile.flush()
                handler.connection.shutdown(socket.SHUT_RDWR)
            elif kind == "trickle":
                for i in range(len(payload)):
                    handler.wfile.write(payload[i:i + 1])
                    handler.wfile.flush()
                    time.sleep(arg[1])
            else:
                handler.wfile.write(payload)
        except OSError:  # the client gave up (deadline) and closed the connection
            handler.close_connection = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def stop(self):
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
