"""A fault-injecting OpenAI-compatible server on loopback, for wire-contract and retry tests only
(the default path uses the real llama.cpp server)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chat_response(content: str) -> dict:
    return {"id": "cmpl-test", "object": "chat.completion", "created": 0, "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class FaultServer:
    """Plays a script of responses: ("status", code), ("sleep", seconds), ("content", text)."""

    def __init__(self, script: list[tuple[str, object]]):
        self.script = list(script)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}})
                kind, arg = server.script.pop(0) if server.script else ("status", 500)
                if kind == "sleep":
                    time.sleep(arg)
                    kind, arg = "status", 500
                if kind == "status":
                    payload = json.dumps({"error": {"message": f"injected {arg}", "type": "test"}}).encode()
                    self.send_response(arg)
                    if arg == 429:
                        self.send_header("retry-after-ms", "10")
                else:
                    payload = json.dumps(chat_response(arg)).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
