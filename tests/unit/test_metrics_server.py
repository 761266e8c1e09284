"""The /metrics server on its own: routes, the scrape deadline, shared scrapes, bounded connections.

Real sockets on loopback; the scrape is a function the test controls, so the timing is the
server's, not Redis's (the paused-Redis case is in tests/cli/test_stats_serve.py).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from cachectl.stats.exporter import MetricsServer
from tests.support.reliability import Recorder

TIMEOUT_BODY = b'cachectl_up{reason="timeout"} 0\n'


@pytest.fixture
def serve() -> Iterator[Callable[..., MetricsServer]]:
    servers: list[MetricsServer] = []

    def start(scrape: Callable[[], bytes], **kw: float) -> MetricsServer:
        server = MetricsServer(("127.0.0.1", 0), scrape, timeout_body=TIMEOUT_BODY, **kw).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
             timeout: float = 10) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


def _counting_scrape() -> tuple[Callable[[], bytes], list[int]]:
    calls: list[int] = []

    def scrape() -> bytes:
        calls.append(1)
        return f"cachectl_up {len(calls)}\n".encode()

    return scrape, calls


def test_get_and_head_on_metrics_and_healthz_404_elsewhere(serve: Callable[..., MetricsServer]) -> None:
    scrape, calls = _counting_scrape()
    port = serve(scrape).port
    assert _request(port, "GET", "/metrics")[:2] == (200, b"cachectl_up 1\n")
    assert _request(port, "GET", "/metrics?x=1")[:2] == (200, b"cachectl_up 2\n")
    status, body, headers = _request(port, "HEAD", "/metrics")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(b"cachectl_up 3\n")))
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert _request(port, "GET", "/healthz")[:2] == (200, b"ok\n")
    assert _request(port, "HEAD", "/healthz")[:2] == (200, b"")
    for path in ("/", "/metrics/x", "/other"):
        assert _request(port, "GET", path)[0] == 404
    assert _request(port, "POST", "/metrics")[0] == 501
    assert len(calls) == 3  # /healthz and 404s never scrape


def test_a_slow_scrape_answers_up_0_within_the_deadline(serve: Callable[..., MetricsServer]) -> None:
    release = threading.Event()

    def stuck() -> bytes:
        release.wait(30)
        return b"cachectl_up 1\n"

    server = serve(stuck, deadline_s=1.0)
    try:
        start = time.monotonic()
        status, body, _ = _request(server.port, "GET", "/metrics")
        assert (status, body) == (200, TIMEOUT_BODY)
        assert 0.9 < time.monotonic() - start < 5
        # Prometheus's own timeout, when shorter, wins (minus half a second to answer in time)
        start = time.monotonic()
        _request(server.port, "GET", "/metrics", {"X-Prometheus-Scrape-Timeout-Seconds": "0.6"})
        assert time.monotonic() - start < 0.9
    finally:
        release.set()
    assert server.flight.started == 1  # the second request joined the stuck scrape


def test_concurrent_scrapes_share_one(serve: Callable[..., MetricsServer]) -> None:
    gate = threading.Event()
    calls: list[int] = []

    def slow() -> bytes:
        calls.append(1)
        gate.wait(10)
        return b"cachectl_up 1\n"

    server = serve(slow)
    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda: answers.append(_request(server.port, "GET", "/metrics")[1]))
               for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while not calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # let the other requests arrive while the first scrape runs
    gate.set()
    for t in threads:
        t.join(10)
    assert answers == [b"cachectl_up 1\n"] * 8
    assert len(calls) == 1


def test_idle_connections_are_bounded_and_cut(serve: Callable[..., MetricsServer],
                                              reliability: Recorder) -> None:
    scrape, _ = _counting_scrape()
    server = serve(scrape, max_connections=8, request_timeout_s=1.0)
    before = threading.active_count()
    most = before
    idle = []
    try:
        for _ in range(300):  # slowloris: connect, send half a request line, wait
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /metr")
            idle.append(s)
            most = max(most, threading.active_count())
        assert most - before <= 8  # one thread per served connection, never more
        assert server.rejected_connections > 0
        # the idle ones are cut after request_timeout_s, and a real scrape gets through
        deadline = time.monotonic() + 10
        while True:
            try:
                if _request(server.port, "GET", "/metrics", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "never served after the idle connections"
            time.sleep(0.1)
    finally:
        for s in idle:
            s.close()
    reliability.add("stats-serve-slowloris", area="one server",
                    fault="300 connections each sending half a request line and waiting",
                    command="stats --serve :PORT",
                    did="at most max_connections (8 here, 32 by default) threads; the rest closed at "
                        "once; idle ones cut after the request timeout",
                    verified="thread count bounded; a real scrape answered 200 meanwhile")


def test_a_request_dripping_bytes_is_cut_after_the_request_timeout(
        serve: Callable[..., MetricsServer]) -> None:
    scrape, _ = _counting_scrape()
    server = serve(scrape, request_timeout_s=1.0)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    start = time.monotonic()
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        with pytest.raises(OSError):  # the cut arrives at one of the sends
            while time.monotonic() - start < 5:
                s.sendall(b"X-Drip: 1\r\n")  # each read well within the per-read timeout
                time.sleep(0.2)
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        raise ConnectionResetError("closed")
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
        assert time.monotonic() - start < 3
    finally:
        s.close()


def test_an_oversized_request_is_refused(serve: Callable[..., MetricsServer]) -> None:
    scrape, calls = _counting_scrape()
    server = serve(scrape, max_request_bytes=1024)
    headers = {f"X-Pad-{i}": "y" * 100 for i in range(20)}
    status, _, _ = _request(server.port, "GET", "/metrics", headers)
    assert status == 431 and not calls


def test_a_client_that_leaves_mid_scrape_is_no_error(serve: Callable[..., MetricsServer],
                                                     capfd: pytest.CaptureFixture[str],
                                                     reliability: Recorder) -> None:
    gate = threading.Event()
    calls: list[int] = []

    def slow() -> bytes:
        calls.append(1)
        gate.wait(10)
        return b"cachectl_up 1\n" * 10000

    server = serve(slow)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    deadline = time.monotonic() + 5
    while not calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST: the answer will meet a reset connection
    gate.set()
    assert _request(server.port, "GET", "/metrics")[0] == 200
    time.sleep(0.2)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "BrokenPipe" not in captured.err
    reliability.add("stats-serve-client-leaves", area="one server",
                    fault="the scraper resets its connection before the scrape's answer",
                    command="stats --serve :PORT",
                    did="the answer dropped quietly; the scrape's result served the next request",
                    verified="no traceback, no BrokenPipe on stderr; the next scrape 200")


@pytest.mark.parametrize("handler_first", [True, False], ids=["handler-done-first", "interrupt-first"])
def test_ctrl_c_inside_thread_start_stops_the_server_and_frees_the_slot_once(
        monkeypatch: pytest.MonkeyPatch, handler_first: bool) -> None:
    """Ctrl-C lands where the main thread starts a request's thread, after that thread began
    (seen under load: --serve ignored the first Ctrl-C). It must stop serve_forever, and the
    connection slot must come back exactly once, whichever of the two finishes first."""
    server = MetricsServer(("127.0.0.1", 0), lambda: b"ok 1\n", timeout_body=TIMEOUT_BODY,
                           max_connections=4)
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        original(thread)
        if getattr(getattr(thread, "_target", None), "__name__", "") == "process_request_thread":
            if handler_first:
                thread.join(10)
            raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start)
    ended = threading.Event()

    def client() -> None:
        # stopping mid-answer, socketserver closes the connection (interrupt-first)
        with contextlib.suppress(OSError, http.client.HTTPException):
            _request(server.port, "GET", "/healthz")
        if not ended.wait(5):  # the old code swallowed the interrupt and kept serving
            server.httpd.shutdown()

    helper = threading.Thread(target=client)
    original(helper)
    try:
        with pytest.raises(KeyboardInterrupt):
            server.serve_forever()
    finally:
        ended.set()
        helper.join(10)
    slots = server.httpd._slots  # all 4 come back (the handler thread may still be ending)
    deadline = time.monotonic() + 5
    taken = 0
    while taken < 4 and time.monotonic() < deadline:
        if slots.acquire(timeout=0.1):
            taken += 1
    assert taken == 4 and not slots.acquire(blocking=False)
