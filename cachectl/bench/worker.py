"""The measuring loop: pre-encoded RESP on a raw socket, replies parsed by hiredis (cachectl.resp).

One worker is one client connection. It turns its plan into a few thousand
pre-encoded pipelines before the clock starts, so the timed loop does no command
encoding, no key choice and no redis-py dispatch: it writes one buffer, reads until
the pipeline's replies are parsed, and records the round trip (``perf_counter_ns``
before the write, after the last reply) once per request, as redis-benchmark does.

This module imports nothing heavy (no redis-py) so that a worker process starts fast.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import random
import socket
import ssl
import time
from collections.abc import MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import Any

from cachectl import resp
from cachectl.bench.histogram import LatencyHistogram

# control slots shared with the coordinator (a list for threads, a RawArray for processes)
CTRL_START_NS = 0  # 0 until every worker is connected; then when the warm-up starts
CTRL_STOP = 1  # non-zero: stop now (interrupt or a fatal error elsewhere)
PROGRESS_EVERY_NS = 50_000_000
_READ_BUFFER = 1 << 20
_MAX_BATCHES = 4096
_RECONNECTS = 20  # attempts after a timeout when the run has no deadline (--requests)


def encode(*parts: bytes | str | int) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


@dataclass(frozen=True)
class Endpoint:
    """Where and how a worker connects (picklable; the password never shows in repr)."""

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    connect_timeout_s: float = 2.0
    timeout_s: float = 5.0


@dataclass(frozen=True)
class WorkerPlan:
    """What one client sends. ``reads``/``writes`` are pre-encoded commands, one per key.

    On a cluster, ``endpoints`` lists every primary and ``key_nodes`` says which one
    owns each key; a pipeline is split per node, as a cluster client does, and each
    part is timed as its own round trip.
    """

    endpoints: Sequence[Endpoint]
    reads: Sequence[bytes]
    writes: Sequence[Sequence[bytes]] = ()  # per key, several variants (jittered TTLs)
    read_ratio: float = 1.0
    cdf: Sequence[float] | None = None  # cumulative key weights (zipf); None: uniform
    pipeline: int = 1
    warmup_ns: int = 0
    duration_ns: int | None = None  # stop after this long (after the warm-up) ...
    requests: int | None = None  # ... or after this many measured requests
    seed: int = 0
    key_nodes: Sequence[int] | None = None  # index into endpoints per key; None: all on 0


@dataclass
class WorkerReport:
    """What one client measured (plain data, sent back from a process)."""

    histogram: dict[str, Any]
    requests: int = 0
    reads: int = 0
    misses: int = 0
    errors: int = 0
    timeouts: int = 0
    elapsed_ns: int = 0
    first_error: str | None = None
    fatal: str | None = None
    denied: bool = False  # the server refused a command (ACL): the run must stop


class _Denied(Exception):
    """A NOPERM/NOAUTH reply: going on would only count the same refusal again."""


_DENIALS = ("NOPERM", "NOAUTH", "WRONGPASS")


def build_batches(plan: WorkerPlan) -> list[tuple[int, bytes, int, int]]:
    """Pre-encode the pipelines this client cycles through.

    Each entry is ``(node, commands, how many, how many are reads)``.
    """
    rng = random.Random(plan.seed)
    n_keys = len(plan.reads)
    count = max(1, min(_MAX_BATCHES, 65_536 // plan.pipeline))
    cdf = plan.cdf
    nodes = plan.key_nodes
    batches = []
    for _ in range(count):
        parts: dict[int, list[bytes]] = {}
        reads: dict[int, int] = {}
        for _ in range(plan.pipeline):
            if cdf is not None:
                k = min(n_keys - 1, bisect.bisect_left(cdf, rng.random() * cdf[-1]))
            else:
                k = rng.randrange(n_keys)
            node = nodes[k] if nodes is not None else 0
            if plan.writes and rng.random() >= plan.read_ratio:
                parts.setdefault(node, []).append(rng.choice(plan.writes[k]))
            else:
                parts.setdefault(node, []).append(plan.reads[k])
                reads[node] = reads.get(node, 0) + 1
        for node, cmds in parts.items():
            batches.append((node, b"".join(cmds), len(cmds), reads.get(node, 0)))
    return batches


class Connection:
    """A raw RESP connection: one socket and one RESP reader."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.sock = self._open()
        self.reader = resp.Reader()
        self.buf = bytearray(_READ_BUFFER)
        try:
            if endpoint.password is not None:
                auth: tuple[str, ...] = (endpoint.password,)
                if endpoint.username:
                    auth = (endpoint.username, endpoint.password)
                self.call(encode("AUTH", *auth))
            if endpoint.db:
                self.call(encode("SELECT", endpoint.db))
            self.call(encode("CLIENT", "SETNAME", "cachectl-bench"))
        except BaseException:
            self.close()
            raise

    def _open(self) -> socket.socket:
        ep = self.endpoint
        sock: socket.socket
        if ep.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(ep.connect_timeout_s)
            sock.connect(ep.unix_path)
        else:
            sock = socket.create_connection((ep.host, ep.port), timeout=ep.connect_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ep.tls:
            ctx = ssl.create_default_context(cafile=ep.tls_ca)
            if ep.tls_cert:
                ctx.load_cert_chain(ep.tls_cert, ep.tls_key)
            if ep.tls_insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            try:
                sock = ctx.wrap_socket(sock, server_hostname=ep.host)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(ep.timeout_s)
        return sock

    def call(self, command: bytes) -> Any:
        """Send one command and return its reply; raise on an error reply."""
        self.sock.sendall(command)
        while True:
            reply = self.reader.gets()
            if reply is not False:
                break
            n = self.sock.recv_into(self.buf)
            if n == 0:
                raise ConnectionError("the server closed the connection")
            self.reader.feed(self.buf, 0, n)  # any buffer works
        if isinstance(reply, resp.ReplyError):
            if str(reply).startswith(_DENIALS):
                raise _Denied(str(reply))
            raise ConnectionError(str(reply))
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def run_worker(plan: WorkerPlan, index: int, control: MutableSequence[int],
               progress: MutableSequence[int]) -> WorkerReport:
    """Connect, wait for the common start, warm up, then measure; never raises."""
    hist = LatencyHistogram()
    report = WorkerReport(histogram={})
    conns: list[Connection] = []
    try:
        batches = build_batches(plan)
        for endpoint in plan.endpoints:
            conns.append(Connection(endpoint))
        progress[index] = -1  # connected and ready
        while control[CTRL_START_NS] == 0:
            if control[CTRL_STOP]:
                return _finish(report, hist, conns)
            time.sleep(0.001)
        _loop(plan, batches, conns, hist, report, index, control, progress)
    except _Denied as exc:
        report.fatal = str(exc)
        report.denied = True
    except (OSError, ConnectionError, resp.ProtocolError) as exc:
        report.fatal = f"{type(exc).__name__}: {exc}"
    return _finish(report, hist, conns)


def process_main(plan: WorkerPlan, index: int, control: MutableSequence[int],
                 progress: MutableSequence[int], results: Any) -> None:
    """A worker process's entry point: run, then put ``(index, report)`` on ``results``."""
    try:
        report = run_worker(plan, index, control, progress)
    except KeyboardInterrupt:  # the coordinator handles Ctrl-C; report what was measured
        report = WorkerReport(histogram=LatencyHistogram().to_state(), fatal="interrupted")
    results.put((index, report))


def _finish(report: WorkerReport, hist: LatencyHistogram,
            conns: list[Connection]) -> WorkerReport:
    for conn in conns:
        conn.close()
    report.histogram = hist.to_state()
    return report


def _loop(plan: WorkerPlan, batches: list[tuple[int, bytes, int, int]], conns: list[Connection],
          hist: LatencyHistogram, report: WorkerReport, index: int,
          control: MutableSequence[int], progress: MutableSequence[int]) -> None:
    clock = time.perf_counter_ns
    start = control[CTRL_START_NS]
    measure_from = start + plan.warmup_ns
    stop_at = measure_from + plan.duration_ns if plan.duration_ns is not None else None
    budget = plan.requests
    record = hist.record
    reply_error = resp.ReplyError
    done = reads = misses = errors = 0
    first_measured = 0
    measuring = False
    next_progress = 0
    current = 0
    conn = conns[0]
    buf = conn.buf
    gets, feed, recv_into, sendall = (conn.reader.gets, conn.reader.feed, conn.sock.recv_into,
                                      conn.sock.sendall)
    t1 = clock()
    try:
        for node, batch, pipeline, batch_reads in itertools.cycle(batches):
            if node != current:  # only on a cluster
                current, conn = node, conns[node]
                buf = conn.buf
                gets, feed, recv_into, sendall = (conn.reader.gets, conn.reader.feed,
                                                  conn.sock.recv_into, conn.sock.sendall)
            if not measuring and t1 >= measure_from:
                measuring = True
                first_measured = t1
            try:
                t0 = clock()
                sendall(batch)
                got = 0
                while got < pipeline:
                    reply = gets()
                    if reply is False:
                        n = recv_into(buf)
                        if n == 0:
                            raise ConnectionError("the server closed the connection")
                        feed(buf, 0, n)
                        continue
                    got += 1
                    if reply is None:
                        misses += 1
                    elif reply.__class__ is reply_error:
                        errors += 1
                        if report.first_error is None:
                            report.first_error = str(reply)
                            if report.first_error.startswith(_DENIALS):
                                raise _Denied(report.first_error)
                t1 = clock()
            except TimeoutError:
                t1 = clock()
                if measuring:
                    # counted at the time waited: a lower bound, never left out of the tail
                    record(t1 - t0, pipeline)
                    report.timeouts += pipeline
                    done += pipeline
                conn.close()
                conn = conns[node] = _reconnect(plan.endpoints[node], stop_at, control)
                buf = conn.buf
                gets, feed, recv_into, sendall = (conn.reader.gets, conn.reader.feed,
                                                  conn.sock.recv_into, conn.sock.sendall)
                continue
            if measuring:
                record(t1 - t0, pipeline)
                done += pipeline
                reads += batch_reads
            else:
                misses = errors = 0
            if t1 >= next_progress:
                next_progress = t1 + PROGRESS_EVERY_NS
                progress[index] = done
                if control[CTRL_STOP]:
                    break
            if (stop_at is not None and t1 >= stop_at) or (budget is not None and done >= budget):
                break
    finally:  # what was measured is reported even when the connection is lost for good
        progress[index] = done
        report.requests = done
        report.reads = reads
        report.misses = misses
        report.errors = errors
        report.elapsed_ns = max(0, t1 - first_measured) if measuring else 0


def _reconnect(endpoint: Endpoint, stop_at: int | None,
               control: MutableSequence[int]) -> Connection:
    """A new connection after a timeout; retried while the run lasts (a stalled server)."""
    attempts = 0
    while True:
        attempts += 1
        try:
            return Connection(endpoint)
        except (OSError, ConnectionError):
            now = time.perf_counter_ns()
            over = stop_at is not None and now >= stop_at
            if over or control[CTRL_STOP] or (stop_at is None and attempts >= _RECONNECTS):
                raise
            time.sleep(0.05)
