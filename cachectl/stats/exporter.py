"""A small HTTP server exposing ``/metrics`` and ``/healthz`` (``cachectl stats --serve :9877``).

Built to stay up and answer in time whatever Redis and the clients do:

- **A scrape answers within its deadline.** The scrape runs in one background worker;
  a request waits at most ``deadline_s`` (or, when Prometheus sends
  ``X-Prometheus-Scrape-Timeout-Seconds``, half a second less than that), then answers
  ``timeout_body`` (``cachectl_up{reason="timeout"} 0``) while the worker finishes. So a
  paused Redis (whose client retries for 3 × --timeout) still yields ``up 0`` before
  Prometheus's own timeout (10 s by default) gives up on the target.
- **Concurrent scrapes share one.** Requests arriving while a scrape runs wait for that
  one instead of queueing their own: two Prometheus replicas cost one scrape, and
  requests abandoned by their clients (or timed out) never pile up scrapes behind it;
  at most one runs at a time.
- **Bounded connections and requests.** At most ``max_connections`` connections are
  served at once (one thread each); more are closed at once. A request must arrive
  whole within ``request_timeout_s`` and ``max_request_bytes``, so idle or slow
  connections (slowloris) cannot hold threads.
- GET and HEAD on ``/metrics`` and ``/healthz``; 404 elsewhere, 501 for other methods.
  A client that hangs up mid-answer is not an error.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cachectl.errors import UsageError

DEFAULT_DEADLINE_S = 8.0  # below Prometheus's default scrape_timeout of 10 s
DEFAULT_MAX_CONNECTIONS = 32
DEFAULT_REQUEST_TIMEOUT_S = 5.0
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_address(text: str) -> tuple[str, int]:
    """``:9877``, ``9877``, ``0.0.0.0:9877`` or ``[::1]:9877`` -> (host, port).

    No host means loopback (127.0.0.1): the metrics name the policy's namespaces and the
    servers, so exposing them beyond the machine is a choice made by naming the address.
    """
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--serve {text!r} is not [HOST]:PORT",
                         hint="e.g. --serve 127.0.0.1:9877 (loopback) or --serve 0.0.0.0:9877 "
                         "(every address)")
    return host, int(port)


class SingleFlight:
    """Runs ``work`` in one background thread at a time; callers meanwhile share its result."""

    def __init__(self, work: Callable[[], bytes]) -> None:
        self._work = work
        self._lock = threading.Lock()
        self._current: concurrent.futures.Future[bytes] | None = None
        self.started = 0  # how many times work ran (for tests and the curious)

    def result(self, timeout_s: float) -> bytes | None:
        """The running (or a new) call's result, or None when it is not done in ``timeout_s``."""
        with self._lock:
            future = self._current
            if future is None or future.done():  # done: its result is already someone's
                future = self._current = concurrent.futures.Future()
                self.started += 1
                threading.Thread(target=self._run, args=(future,), name="cachectl-scrape",
                                 daemon=True).start()
        try:
            return future.result(timeout_s)
        except TimeoutError:
            return None

    def _run(self, future: concurrent.futures.Future[bytes]) -> None:
        try:
            future.set_result(self._work())
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting requests, not lost)
            future.set_exception(exc)
        finally:
            with self._lock:
                self._current = None


class _RequestTooLarge(Exception):
    pass


class _LimitedReader:
    """The request's reader, refusing to hand over more than ``budget`` bytes in all."""

    def __init__(self, raw: Any, budget: int) -> None:
        self._raw = raw
        self._budget = budget

    def readline(self, limit: int = -1) -> bytes:
        if self._budget <= 0:
            raise _RequestTooLarge
        want = self._budget + 1 if limit < 0 else min(limit, self._budget + 1)
        line: bytes = self._raw.readline(want)
        self._budget -= len(line)
        if self._budget < 0:
            raise _RequestTooLarge
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _BoundedHTTPServer(ThreadingHTTPServer):
    """At most ``max_connections`` handler threads; a reaper ends requests that take too long."""

    daemon_threads = True
    request_queue_size = 128  # accept fast and refuse beyond the limit, rather than stall in the kernel

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int, request_timeout_s: float) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._owner_lock = threading.Lock()
        self._unclaimed: set[Any] = set()  # requests whose slot no thread has claimed yet
        self.request_timeout_s = request_timeout_s
        self.rejected = 0
        self._reading: dict[socket.socket, float] = {}  # connection -> deadline to send its request
        self._reading_lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._reap, name="cachectl-metrics-reaper", daemon=True).start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.rejected += 1
            self.shutdown_request(request)
            return
        with self._owner_lock:
            self._unclaimed.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            # a Ctrl-C can land inside Thread.start(), after the thread began: whichever of the
            # two takes the request out of _unclaimed gives the slot back, never both (a second
            # release raised ValueError, which socketserver swallowed along with the Ctrl-C)
            if self._claim(request):
                self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        owned = self._claim(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.reading_done(request)
            if owned:
                self._slots.release()

    def _claim(self, request: Any) -> bool:
        with self._owner_lock:
            if request not in self._unclaimed:
                return False
            self._unclaimed.discard(request)
            return True

    def reading_started(self, conn: socket.socket) -> None:
        with self._reading_lock:
            self._reading[conn] = time.monotonic() + self.request_timeout_s

    def reading_done(self, conn: socket.socket) -> None:
        with self._reading_lock:
            self._reading.pop(conn, None)

    def _reap(self) -> None:
        """Cut connections whose request has not arrived whole in time (a drip of bytes too)."""
        while not self._closed.wait(0.25):
            now = time.monotonic()
            with self._reading_lock:
                late = [c for c, deadline in self._reading.items() if deadline < now]
                for conn in late:
                    del self._reading[conn]
            for conn in late:
                with contextlib.suppress(OSError):  # already gone
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that misbehaves or leaves is not the exporter's failure."""

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()


class MetricsServer:
    """Serves ``scrape()`` at ``/metrics`` within ``deadline_s``; see the module docstring."""

    def __init__(self, address: tuple[str, int], scrape: Callable[[], bytes], *,
                 timeout_body: bytes, deadline_s: float = DEFAULT_DEADLINE_S,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        flight = self.flight = SingleFlight(scrape)

        def deadline_for(headers: Any) -> float:
            asked = headers.get(SCRAPE_TIMEOUT_HEADER)
            try:
                scraper_s = float(asked) - 0.5 if asked else deadline_s
            except ValueError:
                scraper_s = deadline_s
            if scraper_s != scraper_s:  # NaN
                scraper_s = deadline_s
            return max(0.5, min(deadline_s, scraper_s))

        class Handler(BaseHTTPRequestHandler):
            server_version = "cachectl"
            timeout = request_timeout_s  # per read; the reaper bounds the whole request

            def setup(self) -> None:
                super().setup()
                server.reading_started(self.connection)
                self.rfile = _LimitedReader(self.rfile, max_request_bytes)  # type: ignore[assignment]

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except _RequestTooLarge:
                    self.close_connection = True
                    self._answer(431, "text/plain; charset=utf-8", b"request too large\n")
                except OSError:  # the reaper cut it, or the client left
                    self.close_connection = True

            def do_GET(self) -> None:
                self._route(send_body=True)

            def do_HEAD(self) -> None:
                self._route(send_body=False)

            def _route(self, send_body: bool) -> None:
                server.reading_done(self.connection)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body = flight.result(deadline_for(self.headers))
                    self._answer(200, METRICS_TYPE, timeout_body if body is None else body,
                                 send_body)
                elif path == "/healthz":
                    self._answer(200, "text/plain; charset=utf-8", b"ok\n", send_body)
                else:
                    self._answer(404, "text/plain; charset=utf-8",
                                 b"not found: see /metrics and /healthz\n", send_body)

            def _answer(self, status: int, ctype: str, body: bytes, send_body: bool = True) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if send_body:
                        self.wfile.write(body)
                except OSError:  # BrokenPipe, ConnectionReset: the client went away
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: a scrape every 15 s is not news."""

        try:
            server = _BoundedHTTPServer(address, Handler, max_connections, request_timeout_s)
        except OSError as exc:
            raise UsageError(f"cannot listen on {address[0] or '*'}:{address[1]}: {exc.strerror}",
                             hint="pick another port with --serve HOST:PORT") from None
        self.httpd = server
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def rejected_connections(self) -> int:
        return self.httpd.rejected

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
