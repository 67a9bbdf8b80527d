"""Serve a published site on loopback, as a static host would: files first, then the
`_redirects` map (301s), then 404.html."""

from __future__ import annotations

import functools
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOOPBACK = "127.0.0.1"


def read_redirects(site_dir: Path) -> dict[str, str]:
    """from -> to from the Netlify-style `_redirects` file the publisher writes."""
    redirects = {}
    path = site_dir / "_redirects"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) >= 2 and not line.startswith("#"):
                redirects[fields[0]] = fields[1]
    return redirects


class SiteHandler(SimpleHTTPRequestHandler):
    redirects: dict[str, str] = {}

    def _redirect_target(self) -> str | None:
        """The redirect for this path, unless a file answers it (the page wins, as on Netlify)."""
        path = unquote(urlsplit(self.path).path)
        target = self.redirects.get(path)
        if target is None:
            return None
        local = Path(self.translate_path(path))
        return None if local.is_file() or (local / "index.html").is_file() else target

    def do_GET(self):
        target = self._redirect_target()
        if target is None:
            return super().do_GET()
        self.send_response(HTTPStatus.MOVED_PERMANENTLY)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory) / "404.html"
        if code != HTTPStatus.NOT_FOUND or not page.is_file():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):  # keep test and benchmark output quiet
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


def make_server(site_dir: str | Path, port: int = 8000, verbose: bool = False) -> ThreadingHTTPServer:
    """An HTTP server for `site_dir` bound to 127.0.0.1 only (port 0: any free port)."""
    site_dir = Path(site_dir).resolve()
    if not (site_dir / "index.html").is_file():
        raise FileNotFoundError(f"no published site at {site_dir} (run `pinlanding publish` first)")
    handler = type("BoundSiteHandler", (SiteHandler,), {"redirects": read_redirects(site_dir)})
    server = ThreadingHTTPServer((LOOPBACK, port), functools.partial(handler, directory=str(site_dir)))
    server.verbose = verbose
    server.daemon_threads = True
    return server


def serve(site_dir: str | Path, port: int = 8000) -> None:
    server = make_server(site_dir, port, verbose=True)
    host, bound_port = server.server_address[:2]
    print(f"serving {Path(site_dir).resolve()} on http://{host}:{bound_port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
