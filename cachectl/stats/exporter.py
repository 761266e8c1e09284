"""A small threaded HTTP server exposing ``/metrics`` (``cachectl stats --serve :9877``).

Each scrape calls ``produce()`` for fresh figures; scrapes are serialised by a lock
(the sampler keeps one baseline, and two concurrent scrapes would measure nothing).
``/`` answers with a pointer to ``/metrics``; anything else is 404.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cachectl.errors import UsageError

Producer = Callable[[], tuple[int, str, bytes]]  # -> (HTTP status, content type, body)


def parse_address(text: str) -> tuple[str, int]:
    """``:9877``, ``9877``, ``127.0.0.1:9877`` or ``[::1]:9877`` -> (host, port); "" is every address."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--serve {text!r} is not [HOST]:PORT",
                         hint="e.g. --serve :9877 (every address) or --serve 127.0.0.1:9877")
    return host, int(port)


class MetricsServer:
    """``ThreadingHTTPServer`` serving ``produce()`` at ``/metrics``."""

    def __init__(self, address: tuple[str, int], produce: Producer) -> None:
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            server_version = "cachectl"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    with lock:
                        status, ctype, body = produce()
                elif path == "/":
                    status, ctype = 200, "text/html; charset=utf-8"
                    body = (b"<html><body><h1>cachectl stats</h1>"
                            b'<p><a href="/metrics">/metrics</a></p></body></html>\n')
                else:
                    status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: a scrape every 15 s is not news."""

        try:
            self.httpd = ThreadingHTTPServer(address, Handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {address[0] or '*'}:{address[1]}: {exc.strerror}",
                             hint="pick another port with --serve :PORT") from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def serve_forever(self) -> None:
        """Serve until interrupted (KeyboardInterrupt propagates); always closes the socket."""
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self.httpd.server_close()

    def start(self) -> MetricsServer:
        """Serve from a background thread (for embedding and tests)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="cachectl-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the background thread and close the socket."""
        self.httpd.shutdown()
        if self._thread is not None:
            self._thread.join(5)
        self.httpd.server_close()
