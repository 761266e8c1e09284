"""Reads that block in a source's server end when they must: Ctrl-C or SIGTERM cancels a
query stuck in PostgreSQL or SQLite within a second (not after statement_timeout), and an
http source whose server drips its response headers is cut off at the request's total
deadline. Real processes, real signals, real servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

from tests.support.postgres import pg_url, throwaway_database
from tests.support.reliability import Recorder

REPO = Path(__file__).resolve().parents[2]
CACHECTL = str(REPO / ".venv" / "bin" / "cachectl")
ROWS_BEFORE_THE_BLOCK = 3000
BATCH = 1000
STATEMENT_TIMEOUT_S = 600  # what the interrupted warms would otherwise wait
# cachectl with SQLAlchemy unimportable: sqlite:/// sources are read with the stdlib's sqlite3
NO_SQLALCHEMY = ("import sys; sys.modules['sqlalchemy'] = None; "
                 "from cachectl.cli import main; main()")

pytestmark = pytest.mark.timeout(120)


def _policy(folder: Path, namespaces: str) -> Path:
    path = folder / "cachectl.yaml"
    path.write_text("version: 1\nredis: {key_prefix: t}\ndefaults: {ttl: 10m}\n"
                    "namespaces:\n" + namespaces)
    return path


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str],
              timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"the warm never blocked where expected: {out} {err}")


def _interrupt(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[float, str, str]:
    """Send ``sig``; (seconds until the process exited, stdout, stderr). A process still
    running 20 s later is killed and fails the test."""
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"still blocked 20 s after {sig.name}: {err}") from None
    return time.monotonic() - sent, out, err


def _warm(policy: Path, redis_url: str, *, python: list[str] | None = None
          ) -> subprocess.Popen[str]:
    command = [*(python or [CACHECTL]), "warm", "--json", "--policy", str(policy),
               "--url", redis_url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assert_interrupted(code: int, out: str, err: str, sig: signal.Signals,
                        client: redis.Redis, written: dict[str, int]) -> None:
    assert code == 130, err
    assert "Traceback" not in err, err
    assert ("SIGTERM: stopping" if sig == signal.SIGTERM else "stopping after") in err, err
    report = json.loads(out)  # the partial summary, as --json
    assert report["interrupted"] is True, report
    by_name = {ns["namespace"]: ns["written"] for ns in report["namespaces"]}
    assert by_name == written, by_name
    assert client.dbsize() == sum(written.values())  # every write counted, nothing else


# --------------------------------------------------------------------------- PostgreSQL


def _backend(admin: psycopg.Connection[tuple[object, ...]], app: str
             ) -> tuple[str | None, str | None, str | None] | None:
    """(state, wait_event_type, wait_event) of the warm's connection, None once it is gone."""
    row = admin.execute("SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                        "WHERE application_name = %s", (app,)).fetchone()
    return None if row is None else (row[0], row[1], row[2])  # type: ignore[return-value]


@pytest.mark.parametrize("sig, blocker", [(signal.SIGINT, "pg_sleep"),
                                          (signal.SIGTERM, "table lock")])
def test_an_interrupt_cancels_a_postgresql_query_blocked_in_the_server(
        tmp_path: Path, redis_url: str, sig: signal.Signals, blocker: str,
        reliability: Recorder) -> None:
    client = redis.Redis.from_url(redis_url)
    app = f"cachectl_warm_{uuid.uuid4().hex[:8]}"
    with throwaway_database("cachectl_cancel") as name, \
            psycopg.connect(pg_url(name), autocommit=True) as admin, \
            psycopg.connect(pg_url(name)) as holder:
        admin.execute("CREATE TABLE products AS SELECT g AS id, 'p' || g AS name "
                      "FROM generate_series(1, 5000) g")
        admin.execute("CREATE TABLE categories AS SELECT g AS id FROM generate_series(1, 40) g")
        url = f"{pg_url(name)}?application_name={app}"
        if blocker == "pg_sleep":  # row 3001 sleeps 600 s: three batches come, the fourth hangs
            query = (f"SELECT id, name, CASE WHEN id > {ROWS_BEFORE_THE_BLOCK} THEN "
                     f"pg_sleep({STATEMENT_TIMEOUT_S}) END AS z FROM products ORDER BY id")
            expected = {"category": 40, "product": ROWS_BEFORE_THE_BLOCK}
        else:  # a migration holds the table: the query waits on its lock before any row
            holder.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")  # left open
            query = "SELECT id, name FROM products ORDER BY id"
            expected = {"category": 40, "product": 0}
        policy = _policy(tmp_path, f"""\
  category:
    key: "category:{{id}}"
    warm: {{source: {{type: sql, url: "{url}", query: "SELECT id FROM categories"}}}}
  product:
    key: "product:{{id}}"
    warm:
      source: {{type: sql, url: "{url}", query: "{query}", batch_size: {BATCH},
               statement_timeout: {STATEMENT_TIMEOUT_S}}}
""")
        proc = _warm(policy, redis_url)
        waiting_on = ("Timeout", "PgSleep") if blocker == "pg_sleep" else ("Lock", "relation")

        def blocked() -> bool:
            return client.dbsize() == sum(expected.values()) and \
                _backend(admin, app) == ("active", *waiting_on)
        _wait_for(blocked, proc)
        took, out, err = _interrupt(proc, sig)
        _assert_interrupted(proc.returncode, out, err, sig, client, expected)
        print(f"postgresql ({blocker}): exit 130 {took:.2f} s after {sig.name}")
        assert took < 3, took  # not the 600 s statement_timeout
        # the server stopped the statement: the backend is gone, not sleeping on (a backend
        # whose client vanished mid-statement runs on until the statement ends)
        gone_by = time.monotonic() + 5
        while _backend(admin, app) is not None and time.monotonic() < gone_by:
            time.sleep(0.02)
        assert _backend(admin, app) is None, _backend(admin, app)
        holder.rollback()
    reliability.add(f"sql-query-interrupted-{blocker.replace(' ', '-')}", area="one server",
                    fault=f"{sig.name} while a PostgreSQL warm query was blocked in the server "
                    + ("(pg_sleep(600) from row 3,001), statement_timeout 600 s"
                       if blocker == "pg_sleep" else
                       "(waiting on an ACCESS EXCLUSIVE table lock another connection holds), "
                       "statement_timeout 600 s"),
                    command="warm --json (sql sources: categories, then products)",
                    did="the statement cancelled (psycopg cancel_safe): exit 130 within 3 s "
                    "of the signal, the partial --json summary (interrupted: true) printed",
                    verified="the summary counts exactly the keys in Redis (the rows read "
                    "before the block); the server's backend for the query is gone")


# --------------------------------------------------------------------------- SQLite


@pytest.mark.parametrize("reader", ["sqlalchemy", "sqlite3"])
def test_an_interrupt_stops_a_long_sqlite_scan(tmp_path: Path, redis_url: str, reader: str,
                                                reliability: Recorder) -> None:
    client = redis.Redis.from_url(redis_url)
    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("CREATE TABLE t (x)")
    db.close()
    # 3,000 rows at once, then a scan of 10^10 steps that finds the next row in hours
    query = ("WITH RECURSIVE c(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM c "
             "WHERE id < 10000000000) SELECT id, 'p' || id AS name FROM c "
             f"WHERE id <= {ROWS_BEFORE_THE_BLOCK} OR id > 9999999999")
    policy = _policy(tmp_path, f"""\
  product:
    key: "product:{{id}}"
    warm: {{source: {{type: sql, url: "sqlite:///shop.db", query: "{query}",
             batch_size: {BATCH}}}}}
""")
    proc = _warm(policy, redis_url, python=None if reader == "sqlalchemy" else
                 [sys.executable, "-c", NO_SQLALCHEMY])
    since: dict[int, float] = {}  # keys in Redis -> the CPU time when that count was first seen

    def scanning() -> bool:  # rows written, then no more while CPU is burnt in the scan
        keys = client.dbsize()
        if keys < 2 * BATCH:
            return False
        cpu = _cpu_seconds(proc.pid)
        return cpu - since.setdefault(keys, cpu) >= 0.5
    _wait_for(scanning, proc)
    # SQLAlchemy reads a batch ahead: 2,000 of the 3,000 rows are in Redis; sqlite3, 3,000
    written = client.dbsize()
    took, out, err = _interrupt(proc, signal.SIGINT)
    _assert_interrupted(proc.returncode, out, err, signal.SIGINT, client, {"product": written})
    print(f"sqlite ({reader}): exit 130 {took:.2f} s after SIGINT, {written} keys written")
    assert took < 3, took
    reliability.add(f"sql-sqlite-scan-interrupted-{reader}", area="one server",
                    fault="Ctrl-C while a SQLite warm query was scanning 10^10 rows of a "
                    "recursive CTE for its next row (read through "
                    + ("SQLAlchemy)" if reader == "sqlalchemy" else "the stdlib's sqlite3)"),
                    command="warm --json (sql source, sqlite:///)",
                    did="the scan interrupted (Connection.interrupt): exit 130 within 3 s of "
                    "the signal, the partial --json summary (interrupted: true) printed",
                    verified="the summary counts exactly the keys in Redis (the rows read "
                    "before the scan: 2,000 or 3,000)")


# --------------------------------------------------------------------------- HTTP


@contextmanager
def _dripping_headers(interval_s: float, arrived: list[float] | None = None
                      ) -> Iterator[tuple[str, list[tuple[float, float]]]]:
    """An HTTP server (a thread on a socket) that answers every request with a status line
    and then header bytes, one every ``interval_s``, forever. Yields its URL and, per
    connection, (when its request arrived, when the client hung up) in time.monotonic();
    ``arrived`` gets the time of each request as it comes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[tuple[float, float]] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            started = time.monotonic()
            if arrived is not None:
                arrived.append(started)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"X-Drip: ")
                while not stop.is_set():
                    conn.sendall(b"a")
                    time.sleep(interval_s)
            except OSError:  # the client hung up
                held.append((started, time.monotonic()))

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/products", held
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_an_http_server_dripping_its_headers_is_cut_off_at_the_deadline(
        tmp_path: Path, redis_url: str, reliability: Recorder) -> None:
    timeout_s = 1.0
    with _dripping_headers(0.1) as (url, held):
        policy = _policy(tmp_path, f"""\
  product:
    key: "product:{{id}}"
    warm: {{source: {{type: http, url: "{url}", timeout: {timeout_s}, retries: 1}}}}
""")
        try:
            run = subprocess.run([CACHECTL, "warm", "--policy", str(policy), "--url",
                                  redis_url], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("the dripping server held warm for 30 s") from None
        hung_up = time.monotonic() + 2  # the server notices at its next byte, 0.1 s later
        while len(held) < 2 and time.monotonic() < hung_up:
            time.sleep(0.02)
    each = [end - start for start, end in held]
    total = held[-1][1] - held[0][0] if held else 0.0
    print(f"http header drip: exit {run.returncode}; each attempt held "
          f"{', '.join(f'{s:.2f}' for s in each)} s, both {total:.2f} s")
    assert run.returncode == 3, run.stderr  # unreachable, as a server that never answers
    assert "took longer than the timeout" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    # each attempt cut at its 1 s deadline (+ the server's 0.1 s between bytes, + slack);
    # both within 2 deadlines and the 0.2 s backoff between them
    assert len(each) == 2 and all(s < timeout_s + 0.4 for s in each), each
    assert total < 2 * timeout_s + 0.2 + 0.6, total
    reliability.add("http-header-drip", area="bad input",
                    fault="an http source whose server sends the status line, then header "
                    "bytes one every 0.1 s, forever (each read well within the timeout)",
                    command="warm (http source, timeout: 1, retries: 1)",
                    did="exit 3 (unreachable): the answer took longer than the timeout (1 s "
                    "for the whole response, headers and body), on each of the 2 attempts",
                    verified="the server saw each connection closed within 1.4 s of its "
                    "request, both within 2.8 s")


def test_an_interrupt_cancels_an_http_request_in_flight(
        tmp_path: Path, redis_url: str, reliability: Recorder) -> None:
    arrived: list[float] = []
    with _dripping_headers(0.1, arrived) as (url, held):
        policy = _policy(tmp_path, f"""\
  product:
    key: "product:{{id}}"
    warm: {{source: {{type: http, url: "{url}", timeout: 600, retries: 3}}}}
""")
        proc = _warm(policy, redis_url)
        _wait_for(lambda: len(arrived) == 1, proc)
        took, out, err = _interrupt(proc, signal.SIGINT)
        hung_up = time.monotonic() + 2
        while not held and time.monotonic() < hung_up:
            time.sleep(0.02)
    print(f"http request in flight: exit {proc.returncode} {took:.2f} s after SIGINT")
    _assert_interrupted(proc.returncode, out, err, signal.SIGINT,
                        redis.Redis.from_url(redis_url), {"product": 0})
    assert took < 3, took  # not the 600 s timeout, nor 4 attempts of it
    assert len(arrived) == 1 and len(held) == 1, (arrived, held)  # no retry after the stop
    reliability.add("http-request-interrupted", area="one server",
                    fault="Ctrl-C while an http source's request was in flight to a server "
                    "dripping its headers (timeout: 600, retries: 3)",
                    command="warm --json (http source)",
                    did="the request cancelled, no retry: exit 130 within 3 s of the signal, "
                    "the partial --json summary (interrupted: true) printed",
                    verified="the server saw its one connection closed; nothing written")
