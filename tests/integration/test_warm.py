"""cachectl warm against a real redis-server: every source, bad rows, TTLs, reruns, OOM."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from cachectl.errors import InterruptedWork, SourceError, UsageError
from cachectl.freshness import Freshness, classify, ttl_bounds_ms
from cachectl.policy import load_policy
from cachectl.policy.model import Policy
from cachectl.warm import warm_namespaces
from tests.support.http_source import Api, serve
from tests.support.postgres import pg_admin, pg_url
from tests.support.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]
CACHECTL = str(REPO / ".venv" / "bin" / "cachectl")


def write_policy(folder: Path, namespaces: str) -> Policy:
    path = folder / "cachectl.yaml"
    path.write_text("version: 1\nredis: {key_prefix: t}\ndefaults: {ttl: 10m, jitter: 10%}\n"
                    "namespaces:\n" + namespaces)
    return load_policy(path, env={})


def compact(row: dict[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()


def assert_ttls_in_bounds(client: redis.Redis, policy: Policy, slack_ms: int = 60_000,
                          written_since: float | None = None) -> int:
    """Every key has a TTL its namespace could have written (allowing for the time passed
    since ``written_since``, a time.monotonic() taken before the writes, else ``slack_ms``)."""
    checked = 0
    for ns in policy:
        low, high = ttl_bounds_ms(ns)
        keys = list(client.scan_iter(match=ns.template.glob, count=1000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(key)
        pttls = pipe.execute()
        if written_since is not None:
            slack_ms = int((time.monotonic() - written_since) * 1000) + 1000
        for key, pttl in zip(keys, pttls, strict=True):
            assert low - slack_ms <= pttl <= high, (key, pttl, low, high)
            checked += 1
    return checked


def test_ecommerce_policy_warms_every_seed_with_policy_ttls(redis_client: redis.Redis) -> None:
    policy = load_policy(REPO / "policies" / "ecommerce.yaml", env={})
    report = warm_namespaces(redis_client, policy)
    by_ns = {n.namespace: n for n in report.namespaces}
    assert set(by_ns) == {"product", "category", "price", "stock"}
    assert report.ok and report.rejected == report.failed == 0
    assert by_ns["product"].written == 3000 and by_ns["category"].written >= 50
    assert redis_client.dbsize() == report.written
    assert assert_ttls_in_bounds(redis_client, policy, slack_ms=5_000) == report.written
    first = json.loads((REPO / "examples/seeds/products.jsonl").read_text().splitlines()[0])
    assert redis_client.get(f"shop:product:{first['id']}") == compact(first)
    price = json.loads(redis_client.get(f"shop:price:{first['sku']}") or b"{}")
    assert isinstance(price["amount_cents"], int)
    # the jitter really spreads the TTLs, and every key starts fresh
    product = policy.namespace("product")
    pttls = [redis_client.pttl(f"shop:product:{i}") for i in range(1, 200)]
    assert len(set(pttls)) > 150
    assert all(classify(p, product) is Freshness.FRESH for p in pttls)


def test_bad_rows_are_rejected_with_their_line_and_the_rest_written(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    (tmp_path / "p.jsonl").write_bytes(b"\n".join([
        b'{"id": 1, "name": "ok"}',
        b'{"name": "no id"}',
        b'{"id": 2, "name": "ok"',
        b'{"id": "caf\xe9"}',
        b'{"id": {"nested": 1}}',
        b'{"id": "a:b"}',
        b'{"id": 3, "blob": "' + b"x" * 300 + b'"}',
        b'{"id": 1, "name": "duplicate"}',
        b'{"id": 4, "name": "ok"}',
    ]) + b"\n")
    policy = write_policy(tmp_path, """\
  product:
    key: "product:{id}"
    max_value_bytes: 200B
    warm: {source: {type: jsonl, path: p.jsonl}}
""")
    report = warm_namespaces(redis_client, policy)
    ns = report.namespaces[0]
    assert (ns.rows, ns.written, ns.rejected) == (9, 2, 7)
    assert not report.ok
    problems = {p.locator: p.reason for p in ns.problems}
    assert problems["p.jsonl:2"] == "no field 'id' for key 'product:{id}'"
    assert problems["p.jsonl:3"].startswith("not JSON")
    assert problems["p.jsonl:4"].startswith("not UTF-8 (byte 0xe9")
    assert "must be a string or a number" in problems["p.jsonl:5"]
    assert "cannot be one key segment" in problems["p.jsonl:6"]
    assert problems["p.jsonl:7"].startswith("value is 3") and "max_value_bytes 200 B" in \
        problems["p.jsonl:7"]
    assert problems["p.jsonl:8"].startswith("duplicate key t:product:1")
    assert ns.errors_by_reason["duplicate key"] == 1
    # the first of the duplicates is kept
    assert json.loads(redis_client.get("t:product:1") or b"")["name"] == "ok"
    assert sorted(redis_client.keys()) == [b"t:product:1", b"t:product:4"]


def test_value_field_and_raw_encoding(tmp_path: Path, redis_client: redis.Redis) -> None:
    (tmp_path / "s.csv").write_text("sku,quantity,label\nA,3,three\nB,x,bad\nC,5,\n")
    policy = write_policy(tmp_path, """\
  stock:
    key: "stock:{sku}"
    warm: {source: {type: csv, path: s.csv, columns: {quantity: int}}, value: quantity}
  label:
    key: "label:{sku}"
    warm: {source: {type: csv, path: s.csv}, value: label, encoding: raw}
""")
    report = warm_namespaces(redis_client, policy)
    stock, label = report.namespaces
    assert redis_client.get("t:stock:A") == b"3" and redis_client.get("t:stock:C") == b"5"
    assert stock.rejected == 1 and stock.problems[0].locator == "s.csv:3"
    assert "'x' is not an integer" in stock.problems[0].reason
    assert redis_client.get("t:label:A") == b"three" and redis_client.get("t:label:C") == b""
    assert label.written == 3


def test_only_missing_never_overwrites(tmp_path: Path, redis_client: redis.Redis) -> None:
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(50)))
    policy = write_policy(tmp_path, """\
  product:
    key: "product:{id}"
    warm: {source: {type: jsonl, path: p.jsonl}}
""")
    redis_client.set("t:product:7", "mine", px=5000)
    report = warm_namespaces(redis_client, policy, only_missing=True)
    ns = report.namespaces[0]
    assert (ns.written, ns.skipped) == (49, 1)
    assert redis_client.get("t:product:7") == b"mine" and 0 < redis_client.pttl("t:product:7") <= 5000
    again = warm_namespaces(redis_client, policy, only_missing=True).namespaces[0]
    assert (again.written, again.skipped) == (0, 50)


def test_dry_run_writes_nothing_and_needs_no_redis(tmp_path: Path, redis_client: redis.Redis) -> None:
    policy = load_policy(REPO / "policies" / "ecommerce.yaml", env={})
    report = warm_namespaces(None, policy, dry_run=True)
    assert report.dry_run and report.written == 3000 * 3 + report.namespaces[1].written
    assert report.namespaces[0].sample_keys[0] == "shop:product:1"
    assert report.payload_bytes > 1_000_000
    again = warm_namespaces(redis_client, policy, dry_run=True)
    assert again.written == report.written
    assert redis_client.dbsize() == 0


def test_a_missing_source_fails_before_anything_is_written(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "b.jsonl").write_text('{"id": 1}\n')
    policy = write_policy(tmp_path, """\
  a: {key: "a:{id}", warm: {source: {type: jsonl, path: a.jsonl}}}
  b: {key: "b:{id}", warm: {source: {type: jsonl, path: b.jsonl}}}
""")
    (tmp_path / "b.jsonl").unlink()  # vanished after the policy was written
    with pytest.raises(SourceError, match=r"b\.jsonl does not exist"):
        warm_namespaces(redis_client, policy)
    assert redis_client.dbsize() == 0


def test_a_source_deleted_while_it_is_read_is_still_read_whole(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(5000)))
    policy = write_policy(tmp_path, """\
  product: {key: "product:{id}", warm: {source: {type: jsonl, path: p.jsonl}}}
""")
    seen: list[int] = []

    def vanish(task: str, done: int, total: int | None = None, *, payload_bytes: int = 0) -> None:
        if not seen and (tmp_path / "p.jsonl").exists():
            (tmp_path / "p.jsonl").unlink()
        seen.append(done)

    report = warm_namespaces(redis_client, policy, on_progress=vanish, batch_size=100)
    assert report.written == 5000 and not (tmp_path / "p.jsonl").exists()


def test_unknown_namespace_and_namespace_without_source(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, """\
  product: {key: "product:{id}"}
""")
    with pytest.raises(UsageError, match="no namespace 'prodcut'") as exc:
        warm_namespaces(None, policy, ["prodcut"], dry_run=True)
    assert exc.value.hint == "did you mean 'product'?"
    with pytest.raises(UsageError, match="has no warm source"):
        warm_namespaces(None, policy, ["product"], dry_run=True)
    with pytest.raises(UsageError, match="no namespace in the policy has a warm source"):
        warm_namespaces(None, policy, dry_run=True)


def test_source_override_replaces_the_path_and_type(tmp_path: Path,
                                                     redis_client: redis.Redis) -> None:
    (tmp_path / "p.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "other.csv").write_text("id,name\n9,nine\n")
    policy = write_policy(tmp_path, """\
  product: {key: "product:{id}", warm: {source: {type: jsonl, path: p.jsonl}}}
""")
    report = warm_namespaces(redis_client, policy,
                             source_overrides={"product": str(tmp_path / "other.csv")})
    assert report.written == 1 and redis_client.get("t:product:9") == b'{"id":"9","name":"nine"}'


def test_interrupt_finishes_the_batch_in_flight_and_carries_the_partial_report(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(5000)))
    policy = write_policy(tmp_path, """\
  product: {key: "product:{id}", warm: {source: {type: jsonl, path: p.jsonl}}}
""")
    calls = iter(range(10**6))
    with pytest.raises(InterruptedWork) as exc:
        warm_namespaces(redis_client, policy, batch_size=100,
                        should_stop=lambda: next(calls) >= 3)
    partial = exc.value.partial
    ns = partial.namespaces[0]
    assert partial.interrupted and not ns.complete
    assert ns.written == 400 == redis_client.dbsize()  # four whole batches, every reply read
    assert assert_ttls_in_bounds(redis_client, policy) == 400


def test_max_errors_stops_the_run(tmp_path: Path, redis_client: redis.Redis) -> None:
    (tmp_path / "p.jsonl").write_text("".join(
        (json.dumps({"id": i}) if i % 2 else "{bad") + "\n" for i in range(2000)))
    policy = write_policy(tmp_path, """\
  product: {key: "product:{id}", warm: {source: {type: jsonl, path: p.jsonl}}}
""")
    report = warm_namespaces(redis_client, policy, max_errors=10)
    assert report.stopped is not None and "--max-errors" in report.stopped
    assert report.rejected == 11 and not report.namespaces[0].complete
    assert len(report.namespaces[0].problems) == 11


def test_out_of_memory_is_reported_per_row_and_stops(
        tmp_path: Path, redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    client = server.client()
    row = {"blob": "x" * 2000}
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": i, **row}) + "\n"
                                              for i in range(20000)))
    policy = write_policy(tmp_path, """\
  product: {key: "product:{id}", warm: {source: {type: jsonl, path: p.jsonl}}}
""")
    report = warm_namespaces(client, policy, batch_size=200)
    ns = report.namespaces[0]
    assert ns.failed > 0 and ns.errors_by_reason.get("OOM") == ns.failed
    assert ns.problems[0].kind == "failed" and "OOM" in ns.problems[0].reason
    assert ns.problems[0].locator.startswith("p.jsonl:")
    assert report.stopped is not None and "out of memory" in report.stopped
    assert ns.written == client.dbsize() > 0  # what was acknowledged is there
    assert ns.rows < 20000


def test_refused_writes_are_reported_with_their_row(tmp_path: Path, redis_client: redis.Redis,
                                                    redis_url: str) -> None:
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(1, 31)))
    policy = write_policy(tmp_path, """\
  product: {key: "product:{id}", warm: {source: {type: jsonl, path: p.jsonl}}}
""")
    # an ACL user that may write t:product:1* only: every other SET is refused (NOPERM)
    redis_client.acl_setuser("warmer", enabled=True, passwords=["+pw"], keys=["t:product:1*"],
                             commands=["+@all"], reset=True)
    try:
        limited = redis.Redis.from_url(redis_url, username="warmer", password="pw")
        report = warm_namespaces(limited, policy)
        ns = report.namespaces[0]
        assert (ns.written, ns.failed) == (11, 19)  # 1, 10..19 allowed
        assert ns.errors_by_reason == {"NOPERM": 19}
        first = ns.problems[0]
        assert (first.locator, first.key, first.kind) == ("p.jsonl:2", "t:product:2", "failed")
        assert "NOPERM" in first.reason
        assert not report.ok
    finally:
        redis_client.acl_deluser("warmer")


def test_sqlite_and_postgresql_sources(tmp_path: Path, redis_client: redis.Redis) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("CREATE TABLE products (id INTEGER, name TEXT)")
    db.executemany("INSERT INTO products VALUES (?, ?)", [(i, f"p{i}") for i in range(1, 301)])
    db.commit()
    db.close()
    name = f"cachectl_warm_{os.getpid()}"
    admin = pg_admin()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(pg_url(name), autocommit=True) as pg:
            pg.execute("CREATE TABLE prices (sku text, amount numeric(10,2), at timestamptz)")
            pg.execute("INSERT INTO prices SELECT 'S' || g, g * 1.25, '2024-01-01T00:00:00Z' "
                       "FROM generate_series(1, 5000) g")
        policy = write_policy(tmp_path, f"""\
  product:
    key: "product:{{id}}"
    warm: {{source: {{type: sql, url: "sqlite:///shop.db", query: "SELECT * FROM products"}}}}
  price:
    key: "price:{{sku}}"
    warm:
      source:
        type: sql
        url: "{pg_url(name)}"
        query: "SELECT sku, amount, at FROM prices ORDER BY sku"
        batch_size: 500
""")
        report = warm_namespaces(redis_client, policy)
        product, price = report.namespaces
        assert (product.written, price.written) == (300, 5000) and report.ok
        assert redis_client.get("t:product:7") == b'{"id":7,"name":"p7"}'
        assert json.loads(redis_client.get("t:price:S3") or b"") == {
            "sku": "S3", "amount": 3.75, "at": "2024-01-01T00:00:00+00:00"}
        assert assert_ttls_in_bounds(redis_client, policy) == 5300
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def api() -> Iterator[Api]:
    items = [{"id": i, "name": f"item {i}"} for i in range(1, 96)] + [{"name": "no id"}]
    with serve(Api(items, page_size=10, token="s3cret")) as running:
        yield running


def test_http_source_with_page_and_cursor_pagination(
        tmp_path: Path, redis_client: redis.Redis, api: Api) -> None:
    api.fail_first = 2  # retried with backoff
    policy = write_policy(tmp_path, f"""\
  paged:
    key: "paged:{{id}}"
    warm:
      source:
        type: http
        url: {api.url}/pages
        items: data.products
        env_headers: {{Authorization: {{var: API_TOKEN, prefix: "Bearer "}}}}
        pagination: {{type: page, param: page, size_param: per_page, size: 25}}
        timeout: 5
        retries: 3
  cursored:
    key: "cursored:{{id}}"
    warm:
      source:
        type: http
        url: {api.url}/cursor
        items: items
        env_headers: {{Authorization: {{var: API_TOKEN, prefix: "Bearer "}}}}
        pagination: {{type: cursor, param: cursor, next: meta.next}}
""")
    report = warm_namespaces(redis_client, policy, env={"API_TOKEN": "s3cret"})
    paged, cursored = report.namespaces
    assert (paged.rows, paged.written, paged.rejected) == (96, 95, 1)
    assert (cursored.rows, cursored.written, cursored.rejected) == (96, 95, 1)
    assert paged.problems[0].locator == "page 4 item 21"  # 25 per page: row 96
    assert cursored.problems[0].locator == "page 10 item 6"
    assert json.loads(redis_client.get("t:paged:42") or b"") == {"id": 42, "name": "item 42"}
    assert any("page=4" in r and "per_page=25" in r for r in api.requests)
    assert sum(1 for r in api.requests if r.startswith("/cursor")) == 10


def test_http_source_refusals_are_source_errors(tmp_path: Path, redis_client: redis.Redis,
                                                api: Api) -> None:
    policy = write_policy(tmp_path, f"""\
  a:
    key: "a:{{id}}"
    warm: {{source: {{type: http, url: {api.url}/array,
            env_headers: {{Authorization: {{var: API_TOKEN, prefix: "Bearer "}}}}}}}}
""")
    with pytest.raises(SourceError, match="HTTP 401") as exc:
        warm_namespaces(redis_client, policy, env={"API_TOKEN": "wrong"})
    assert "token" in (exc.value.hint or "") and "wrong" not in str(exc.value)
    report = warm_namespaces(redis_client, policy, env={"API_TOKEN": "s3cret"})
    assert report.written == 95  # one request, the whole array
    api.fail_first = 10
    fast = write_policy(tmp_path, f"""\
  a: {{key: "a:{{id}}", warm: {{source: {{type: http, url: {api.url}/array, retries: 1}}}}}}
""")
    with pytest.raises(SourceError, match="HTTP 503 after 2 attempts"):
        warm_namespaces(redis_client, fast)


def _big_policy(folder: Path, rows: int) -> Path:
    lines = "".join(json.dumps({"id": i, "name": f"product {i}", "pad": "x" * 200}) + "\n"
                    for i in range(rows))
    (folder / "p.jsonl").write_text(lines)
    (folder / "c.csv").write_text("sku,qty\n" + "".join(f"S{i},{i}\n" for i in range(2000)))
    policy = folder / "cachectl.yaml"
    policy.write_text("""\
version: 1
redis: {key_prefix: k}
namespaces:
  product:
    key: "product:{id}"
    ttl: 1h
    stale: 10m
    stale_if_error: 1h
    jitter: 10%
    warm: {source: {type: jsonl, path: p.jsonl}}
  stock:
    key: "stock:{sku}"
    ttl: 5m
    stale: 1m
    warm: {source: {type: csv, path: c.csv, columns: {qty: int}}}
""")
    return policy


def _snapshot(client: redis.Redis, policy: Policy) -> dict[bytes, tuple[bytes, Freshness]]:
    keys = list(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
        pipe.pttl(key)
    replies = pipe.execute()
    out = {}
    for i, key in enumerate(keys):
        ns = next(n for n in policy if n.template.matches(key))
        out[key] = (replies[2 * i] or b"", classify(replies[2 * i + 1], ns))
    return out


@pytest.mark.slow
def test_a_killed_warm_rerun_ends_with_the_keyspace_of_a_clean_run(
        tmp_path: Path, redis_server: RedisServer, redis_url: str) -> None:
    policy_path = _big_policy(tmp_path, 40000)
    policy = load_policy(policy_path, env={})
    killed_url = redis_url  # db 0
    clean_url = redis_url.rsplit("/", 1)[0] + "/1"
    killed = redis.Redis.from_url(killed_url)
    clean = redis.Redis.from_url(clean_url)
    clean.flushdb()
    cmd = [CACHECTL, "warm", "-p", str(policy_path), "--json"]
    proc = subprocess.Popen([*cmd, "--url", killed_url, "--rate", "20000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while killed.dbsize() < 5000 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    partial = killed.dbsize()
    assert 0 < partial < 42000, "the warm was not killed mid-way"
    rerun_started = time.monotonic()
    rerun = subprocess.run([*cmd, "--url", killed_url], capture_output=True, text=True,
                           timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    fresh = subprocess.run([*cmd, "--url", clean_url], capture_output=True, text=True,
                           timeout=120, check=False)
    assert fresh.returncode == 0, fresh.stderr
    after_rerun, after_clean = _snapshot(killed, policy), _snapshot(clean, policy)
    assert len(after_clean) == 42000
    assert after_rerun.keys() == after_clean.keys()
    assert after_rerun == after_clean  # same value and same freshness band, key by key
    assert {band for _, band in after_rerun.values()} == {Freshness.FRESH}
    assert assert_ttls_in_bounds(killed, policy, written_since=rerun_started) == 42000
    clean.flushdb()


@pytest.mark.slow
def test_ctrl_c_exits_130_with_complete_writes(tmp_path: Path, redis_url: str) -> None:
    policy_path = _big_policy(tmp_path, 40000)
    client = redis.Redis.from_url(redis_url)
    proc = subprocess.Popen([CACHECTL, "warm", "-p", str(policy_path), "--url", redis_url,
                             "--rate", "20000", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while client.dbsize() < 3000 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert report["interrupted"] is True
    assert report["written"] == client.dbsize()  # every acknowledged write, and nothing else
    assert "rerun" in err
    policy = load_policy(policy_path, env={})
    assert assert_ttls_in_bounds(client, policy) == client.dbsize()



def test_redis_dying_mid_warm_is_a_redis_error_and_a_rerun_completes(
        tmp_path: Path, redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(20000)))
    policy = write_policy(tmp_path, """\
  product: {key: "product:{id}", warm: {source: {type: jsonl, path: p.jsonl}}}
""")
    client = redis.Redis.from_url(server.url, socket_timeout=5)

    batches = itertools.count(1)

    def crash() -> bool:  # asked once per batch sent: Redis dies after the 20th
        if next(batches) == 20 and server.proc is not None:
            server.kill()
        return False

    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        warm_namespaces(client, policy, batch_size=100, should_stop=crash)
    server.start()
    report = warm_namespaces(client, policy)
    assert report.ok and report.written == 20000 == client.dbsize()
    assert assert_ttls_in_bounds(client, policy) == 20000


@pytest.mark.parametrize("fast", [True, False], ids=["orjson", "stdlib"])
def test_stored_bytes_and_ttls_are_the_same_with_or_without_orjson(
        tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
        fast: bool) -> None:
    import random

    from cachectl.freshness import write_ttl_ms
    from cachectl.warm import codec

    if fast and codec.fast_row is None:
        pytest.skip("orjson is not installed (the fast extra)")
    if not fast:
        monkeypatch.setattr(codec, "fast_row", None)
    lines = [
        '{"id": 1, "name": "caf\u00e9 \U0001f600", "rating": 4.5, "tags": ["a", "b"]}',
        '{"id":2,"tiny":1e-05,"small":0.00012,"big":1e16,"neg":-0.0}',
        '{"id":3,"huge_int":123456789012345678901234567890,"u64":18446744073709551615}',
        '{"id":4,"nan":NaN,"text":"5e-3 is text","esc":"\\u00e9\\n\\t\\u0001"}',
        '{"id":5,"nested":{"a":[1,2.5,{"b":null}],"c":true}}',
        '{"id": 6, "url": "https://example-shop.test/p/6/1.webp"}',
    ]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    policy = write_policy(tmp_path, """\
  product:
    key: "product:{id}"
    stale: 1m
    warm: {source: {type: jsonl, path: p.jsonl}}
""")
    started = time.monotonic()
    report = warm_namespaces(redis_client, policy, rng=random.Random(11))
    assert report.written == len(lines) and report.rejected == 0
    draws = random.Random(11)
    ns = policy.namespace("product")
    for n, line in enumerate(lines, 1):
        key = f"t:product:{n}"
        assert redis_client.get(key) == compact(json.loads(line)), line
        expected = write_ttl_ms(ns, draws)  # the same draws, in row order
        pttl = redis_client.pttl(key)
        # the key has lived at most as long as since the warm started, read after PTTL
        elapsed_ms = int((time.monotonic() - started) * 1000) + 1
        assert expected - elapsed_ms <= pttl <= expected
