"""A local JSON API for the http warm source: page or cursor pagination, auth, flaky pages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Api:
    """What the server serves and what it saw."""

    items: list[Any]
    page_size: int = 10
    token: str | None = None  # required as "Bearer <token>" when set
    fail_first: int = 0  # answer 503 to this many requests first
    requests: list[str] = field(default_factory=list)
    url: str = ""


class _Handler(BaseHTTPRequestHandler):
    api: Api

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        api = self.api
        api.requests.append(self.path)
        if api.fail_first > 0:
            api.fail_first -= 1
            self._json(503, {"error": "try again"})
            return
        if api.token is not None and self.headers.get("Authorization") != f"Bearer {api.token}":
            self._json(401, {"error": "unauthorized"})
            return
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        size = int(query.get("per_page", api.page_size))
        if parts.path == "/pages":
            page = int(query.get("page", "1"))
            chunk = api.items[(page - 1) * size: page * size]
            self._json(200, {"data": {"products": chunk}, "page": page})
        elif parts.path == "/cursor":
            start = int(query.get("cursor", "0"))
            chunk = api.items[start:start + size]
            nxt = str(start + size) if start + size < len(api.items) else None
            self._json(200, {"items": chunk, "meta": {"next": nxt}})
        elif parts.path == "/array":
            self._json(200, api.items)
        elif parts.path == "/html":
            body = b"<html>nope</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._json(404, {"error": "not found"})


@contextmanager
def serve(api: Api) -> Iterator[Api]:
    """Serve ``api`` on 127.0.0.1 (a free port) for the duration of the block."""
    handler = type("Handler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
