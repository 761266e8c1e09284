"""A local JSON API for the http warm source: page or cursor pagination, auth, flaky pages,
and hostile answers (redirects, a redirect loop, corrupt gzip, deep nesting, a dripping body)."""

from __future__ import annotations

import json
import threading
import time
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
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    redirect_to: str = ""  # /redirect answers 302 to this URL
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
        api.headers_seen.append(dict(self.headers.items()))
        if self._hostile(urlsplit(self.path).path):
            return
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
        elif parts.path.startswith("/items/"):  # one item by id: a lookup URL
            wanted = parts.path.removeprefix("/items/")
            found = [i for i in api.items if isinstance(i, dict) and str(i.get("id")) == wanted]
            if found:
                self._json(200, found[0])
            else:
                self._json(404, {"error": "no such item"})
        elif parts.path == "/html":
            body = b"<html>nope</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._json(404, {"error": "not found"})


    def _raw(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hostile(self, path: str) -> bool:
        """Answer the hostile paths; False for the others."""
        if path == "/redirect":
            self._raw(302, b"", Location=self.api.redirect_to)
        elif path == "/loop":
            self._raw(302, b"", Location="/loop")
        elif path == "/gzip-corrupt":
            self._raw(200, b"\x1f\x8b\x08\x00not gzip at all", Content_Encoding="gzip")
        elif path == "/deep":
            self._raw(200, b"[" * 3000 + b"]" * 3000)
        elif path == "/drip":  # a valid answer, one byte every 0.2 s, for as long as it takes
            body = json.dumps(self.api.items).encode() + b" " * 200  # 40+ s at this pace
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass  # the client gave up, as it should
        else:
            return False
        return True


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
