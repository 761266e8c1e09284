"""cachectl bench against a real redis-server: fidelity, isolation, read-only --existing."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cachectl.bench import BenchConfig, BenchMode, Verdict, endpoint_of, run_bench
from cachectl.cli import main
from cachectl.freshness import ttl_bounds_ms
from cachectl.policy import load_policy

POLICY = """\
version: 1
redis: {key_prefix: shop}
thresholds:
  latency_p99_ms: {cached: %(cached)s, hot: %(hot)s}
namespaces:
  product:
    key: "product:{id}"
    ttl: 1h
    stale: 10m
    warm:
      source: {type: jsonl, path: products.jsonl}
  price: {key: "price:{sku}", ttl: 5m, stale: 1m}
"""

WRITES = {"set", "setex", "psetex", "del", "unlink", "expire", "pexpire", "hset", "lpush",
          "rpush", "sadd", "zadd", "xadd", "incr", "incrby", "append", "getset", "getdel",
          "getex", "flushdb", "flushall", "rename", "copy", "restore", "mset", "msetnx"}


# p99 limits no loaded machine misses, so a verdict is FAIL only where a test injects latency
GENEROUS_HOT_MS, GENEROUS_CACHED_MS = 2000, 5000
# what the proxy adds to every reply: well above what a loaded machine adds on its own
DELAY_MS = 20.0


def write_policy(tmp_path: Path, hot_ms: float = GENEROUS_HOT_MS) -> Path:
    rows = [{"id": f"p{i}", "name": f"Product {i}", "price_cents": 100 + i} for i in range(60)]
    (tmp_path / "products.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY % {"hot": hot_ms, "cached": GENEROUS_CACHED_MS})
    return path


class DelayProxy:
    """A TCP proxy that holds every reply from the server for ``delay_s`` before passing it on."""

    def __init__(self, port: int, delay_s: float) -> None:
        self.upstream = port
        self.delay_s = delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.delay_s),
                             daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, delay_s: float) -> None:
        try:
            while data := src.recv(65536):
                if delay_s:
                    time.sleep(delay_s)
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        for s in self.sockets:
            s.close()


@pytest.fixture
def slow_proxy(redis_url: str, redis_server: object) -> Iterator[DelayProxy]:
    proxy = DelayProxy(redis_server.port, DELAY_MS / 1000)  # type: ignore[attr-defined]
    yield proxy
    proxy.close()


def bench(policy_path: Path, url: str, config: BenchConfig):  # type: ignore[no-untyped-def]
    policy = load_policy(policy_path, env={})
    client = redis.Redis.from_url(url)
    try:
        return run_bench(client, endpoint_of(client, url=url), policy, config, server=url)
    finally:
        client.close()


def test_percentiles_match_an_injected_reply_delay(tmp_path: Path, slow_proxy: DelayProxy,
                                                   redis_url: str) -> None:
    url = f"redis://127.0.0.1:{slow_proxy.port}/0"
    result = bench(write_policy(tmp_path), url, BenchConfig(
        namespaces=("price",), modes=(BenchMode.HOT,), requests=100, duration_ms=None,
        warmup_ms=0, keys=50, value_size=64))
    lat = result.runs[0].latency
    assert lat.count == 100
    # every reply waits DELAY_MS in the proxy: that is the floor, and the median adds less
    # than the delay again on top (the bounds leave a loaded machine DELAY_MS of slack)
    assert lat.min_ms >= DELAY_MS
    assert DELAY_MS <= lat.p50_ms < 2 * DELAY_MS
    assert lat.p99_ms >= lat.p50_ms
    # a direct run on the same server does not see the delay
    direct = bench(write_policy(tmp_path), redis_url, BenchConfig(
        namespaces=("price",), modes=(BenchMode.HOT,), requests=300, duration_ms=None,
        warmup_ms=0, keys=50, value_size=64))
    assert direct.runs[0].latency.p50_ms < DELAY_MS / 2


def test_pipelined_requests_record_the_round_trip(tmp_path: Path, slow_proxy: DelayProxy,
                                                  redis_url: str) -> None:
    url = f"redis://127.0.0.1:{slow_proxy.port}/0"
    result = bench(write_policy(tmp_path), url, BenchConfig(
        namespaces=("price",), modes=(BenchMode.CACHED,), requests=160, duration_ms=None,
        warmup_ms=0, keys=50, value_size=64, pipeline=16))
    run = result.runs[0]
    assert run.requests == 160
    assert run.latency.count == 160
    assert run.latency.min_ms >= DELAY_MS  # each request counts its pipeline's round trip


def test_injected_latency_fails_the_hot_threshold_with_exit_1(
        tmp_path: Path, slow_proxy: DelayProxy, capsys: pytest.CaptureFixture[str]) -> None:
    policy = write_policy(tmp_path, hot_ms=2)
    url = f"redis://127.0.0.1:{slow_proxy.port}/0"
    code = main(["bench", "-p", str(policy), "--url", url, "-n", "price", "--mode", "hot",
                 "--requests", "60", "--warmup", "0s", "--keys", "20", "--value-size", "64B",
                 "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    run = doc["runs"][0]
    assert run["verdict"] == "FAIL"
    assert run["threshold"] == "latency_hot_p99_ms" and run["threshold_p99_ms"] == 2
    assert any("p99" in reason for reason in run["reasons"])
    assert doc["passed"] is False


def test_benchmark_keys_never_touch_application_keys_and_are_removed(
        tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> None:
    # an application key with the same id the benchmark generates (b0)
    redis_client.set("shop:product:b0", b"app value", px=3_600_000)
    redis_client.set("shop:price:b0", b"42", px=300_000)
    seen: list[bytes] = []

    def watch(task: str, done: int, total: int | None = None) -> None:
        if task.endswith(": load") and not seen:
            seen.extend(redis_client.scan_iter(match="shop:cachectl:bench:*", count=1000))

    policy = load_policy(write_policy(tmp_path), env={})
    client = redis.Redis.from_url(redis_url)
    result = run_bench(client, endpoint_of(client, url=redis_url), policy, BenchConfig(
        namespaces=("product", "price"), modes=(BenchMode.CACHED, BenchMode.MIXED),
        requests=400, duration_ms=None, warmup_ms=0, keys=100, read_ratio=0.5),
        on_progress=watch)
    client.close()
    assert seen, "benchmark keys exist while it runs"
    assert all(k.startswith(b"shop:cachectl:bench:") for k in seen)
    assert redis_client.get("shop:product:b0") == b"app value"
    assert redis_client.get("shop:price:b0") == b"42"
    assert 3_500_000 < redis_client.pttl("shop:product:b0") <= 3_600_000
    assert list(redis_client.scan_iter(match="shop:cachectl:bench:*")) == []
    assert result.keys_written == 200 and result.keys_removed == 200
    assert redis_client.dbsize() == 2
    assert all(r.verdict is Verdict.PASS for r in result.runs)
    mixed = next(r for r in result.runs if r.mode is BenchMode.MIXED)
    assert 0 < mixed.reads < mixed.requests  # about half the requests were writes


def test_keep_leaves_keys_with_policy_ttls(tmp_path: Path, redis_url: str,
                                           redis_client: redis.Redis) -> None:
    result = bench(write_policy(tmp_path), redis_url, BenchConfig(
        namespaces=("product",), modes=(BenchMode.MIXED,), requests=300, duration_ms=None,
        warmup_ms=0, keys=40, read_ratio=0.2, keep=True, value_size=100))
    assert result.kept and result.keys_removed == 0
    keys = list(redis_client.scan_iter(match="shop:cachectl:bench:product:*"))
    assert len(keys) == 40
    policy = load_policy(tmp_path / "cachectl.yaml", env={})
    low, high = ttl_bounds_ms(policy.namespace("product"))
    for k in keys:
        assert low - 5_000 < redis_client.pttl(k) <= high  # every key has a policy TTL
        assert redis_client.strlen(k) == 100


def test_value_sizes_are_sampled_from_real_keys(tmp_path: Path, redis_url: str,
                                                redis_client: redis.Redis) -> None:
    for i in range(5):
        redis_client.set(f"shop:price:s{i}", b"x" * 300, px=60_000)
    result = bench(write_policy(tmp_path), redis_url, BenchConfig(
        namespaces=("price",), requests=50, duration_ms=None, warmup_ms=0, keys=10))
    run = result.runs[0]
    assert run.value_bytes_mean == 300
    assert run.value_size_source == "sampled 5 keys"


def _commandstats(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(v["calls"])
            for name, v in client.info("commandstats").items()}


def test_existing_reads_the_real_keyspace_and_never_writes(
        tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> None:
    for i in range(30):
        redis_client.set(f"shop:product:e{i}", json.dumps({"id": i}), px=600_000)
    redis_client.hset("shop:product:h1", mapping={"a": "1"})
    before = _commandstats(redis_client)
    snapshot = {k: redis_client.dump(k) for k in redis_client.scan_iter()}
    result = bench(write_policy(tmp_path), redis_url, BenchConfig(
        namespaces=("product",), modes=(BenchMode.CACHED, BenchMode.HOT), existing=True,
        requests=300, duration_ms=None, warmup_ms=0, keys=100))
    after = _commandstats(redis_client)
    called = {cmd for cmd, n in after.items() if n > before.get(cmd, 0)}
    assert called & WRITES == set()
    assert {"get", "hgetall"} <= called
    assert {k: redis_client.dump(k) for k in redis_client.scan_iter()} == snapshot
    run = result.runs[0]
    assert run.key_source == "existing" and run.keys == 31
    assert run.errors == 0 and run.misses == 0 and run.requests == 300
    assert result.keys_written == 0


def test_existing_runs_as_a_read_only_acl_user(tmp_path: Path, redis_url: str,
                                               redis_client: redis.Redis) -> None:
    for i in range(10):
        redis_client.set(f"shop:price:r{i}", b"1", px=600_000)
    redis_client.execute_command(
        "ACL", "SETUSER", "bench_ro", "on", ">ro-secret", "~*", "resetchannels", "-@all",
        "+@read", "+ping", "+client|setname", "+hello", "+select")
    try:
        port = redis_url.rsplit(":", 1)[1].split("/")[0]
        url = f"redis://bench_ro:ro-secret@127.0.0.1:{port}/0"
        result = bench(write_policy(tmp_path), url, BenchConfig(
            namespaces=("price",), existing=True, requests=100, duration_ms=None,
            warmup_ms=0, keys=50))
        assert result.runs[0].errors == 0 and result.runs[0].requests == 100
        # the same user cannot run a generated benchmark: it would have to write
        ro = redis.Redis.from_url(url)
        with pytest.raises(redis.exceptions.NoPermissionError):
            ro.set("shop:cachectl:bench:x", b"1")
        ro.close()
    finally:
        redis_client.execute_command("ACL", "DELUSER", "bench_ro")


def test_origin_times_the_warm_source_and_uses_its_rows(
        tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> None:
    result = bench(write_policy(tmp_path), redis_url, BenchConfig(
        namespaces=("product", "price"), origin=True, requests=200, duration_ms=None,
        warmup_ms=0, keys=1000, keep=True))
    product, price = result.runs
    assert product.key_source == "warm source" and product.keys == 60
    origin = product.origin
    assert origin is not None and origin.timed and origin.samples > 0
    assert origin.latency is not None and origin.speedup_p50 is not None
    assert origin.hit_rate == pytest.approx(0.8) and origin.origin_calls_saved == origin.hit_rate
    stored = redis_client.get("shop:cachectl:bench:product:product:p7")
    assert stored is not None and json.loads(stored)["name"] == "Product 7"
    assert price.origin is not None and not price.origin.timed
    assert price.origin.reason == "no warm source in the policy"


def test_several_client_processes_merge_their_histograms(tmp_path: Path,
                                                         redis_url: str) -> None:
    result = bench(write_policy(tmp_path), redis_url, BenchConfig(
        namespaces=("price",), requests=400, duration_ms=None, warmup_ms=0, keys=50,
        value_size=32, clients=2, pipeline=4, parallel="processes"))
    run = result.runs[0]
    assert result.parallelism == "processes"
    assert run.requests >= 400 and run.latency.count == run.requests
    assert run.errors == 0


def test_duration_mode_stops_on_time(tmp_path: Path, redis_url: str) -> None:
    started = time.monotonic()
    result = bench(write_policy(tmp_path), redis_url, BenchConfig(
        namespaces=("price",), duration_ms=1000, warmup_ms=200, keys=20, value_size=16,
        clients=2))
    took = time.monotonic() - started
    run = result.runs[0]
    # measured from the first request after the warm-up to the first that ends past the
    # deadline: a stalled thread on a loaded machine moves either end by a request or so,
    # a run that ignored the duration would not stop at all
    assert 0.7 < run.seconds < 2.5
    assert took < 15
    assert run.requests > 0 and run.throughput_rps > 0


def test_a_refused_command_stops_the_run_with_exit_3(
        tmp_path: Path, redis_url: str, redis_client: redis.Redis,
        capsys: pytest.CaptureFixture[str]) -> None:
    redis_client.execute_command(
        "ACL", "SETUSER", "bench_noget", "on", ">noget-secret", "~*", "resetchannels", "-@all",
        "+set", "+info", "+unlink", "+scan", "+type", "+strlen", "+ping", "+client|setname")
    try:
        port = redis_url.rsplit(":", 1)[1].split("/")[0]
        url = f"redis://bench_noget:noget-secret@127.0.0.1:{port}/0"
        code = main(["bench", "-p", str(write_policy(tmp_path)), "--url", url, "-n", "price",
                     "--requests", "100", "--warmup", "0s", "--keys", "10"])
        err = capsys.readouterr().err
        assert code == 3
        assert "permission denied" in err and "'get'" in err
        assert "noget-secret" not in err
        # the keys it loaded were still removed
        assert list(redis_client.scan_iter(match="shop:cachectl:bench:*")) == []
    finally:
        redis_client.execute_command("ACL", "DELUSER", "bench_noget")


def test_origin_times_a_sql_source_through_the_warm_registry(
        tmp_path: Path, redis_url: str) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("CREATE TABLE products (id TEXT, name TEXT)")
    db.executemany("INSERT INTO products VALUES (?, ?)", [(f"s{i}", f"P{i}") for i in range(40)])
    db.commit()
    db.close()
    path = tmp_path / "sql.yaml"
    path.write_text('version: 1\nredis: {key_prefix: shop}\nnamespaces:\n'
                    '  product:\n    key: "product:{id}"\n    ttl: 1h\n'
                    '    warm: {source: {type: sql, url: "sqlite:///shop.db", '
                    'query: "SELECT id, name FROM products"}}\n'
                    '  broken:\n    key: "broken:{id}"\n    ttl: 1h\n'
                    '    warm: {source: {type: sql, url: "nonsense", query: "SELECT 1"}}\n')
    result = bench(path, redis_url, BenchConfig(
        origin=True, requests=100, duration_ms=None, warmup_ms=0, keys=1000, value_size=50))
    product, broken = result.runs
    assert product.key_source == "warm source" and product.keys == 40
    assert product.origin is not None and product.origin.timed
    assert product.origin.source.startswith("sql") and product.origin.missing_rows == 0
    assert product.origin.latency is not None and product.origin.latency.count > 0
    assert broken.key_source == "generated"
    assert broken.origin is not None and not broken.origin.timed
    assert "cannot be opened" in (broken.origin.reason or "")


def test_a_stalled_server_is_counted_as_timeouts_and_fails(
        tmp_path: Path, redis_url: str, redis_server: object) -> None:
    policy = load_policy(write_policy(tmp_path), env={})
    client = redis.Redis.from_url(redis_url)
    target = endpoint_of(client, url=redis_url, timeout_s=0.2)
    side = redis.Redis.from_url(redis_url)

    def stall(task: str, done: int, total: int | None = None) -> None:
        if task == "price: cached" and done > 0 and not stalled.is_set():
            stalled.set()
            threading.Thread(target=side.execute_command, args=("DEBUG", "SLEEP", "0.6"),
                             daemon=True).start()

    stalled = threading.Event()
    result = run_bench(client, target, policy, BenchConfig(
        namespaces=("price",), duration_ms=1500, warmup_ms=0, keys=20, value_size=16),
        on_progress=stall)
    run = result.runs[0]
    assert stalled.is_set()
    assert run.timeouts >= 1
    assert run.verdict is Verdict.FAIL
    assert any("timeouts" in r for r in run.reasons)
    assert run.latency.max_ms >= 190  # the timed-out request is in the tail, not dropped
    client.close()
    side.close()


@pytest.mark.parametrize("during", ["price: load", "price: cached"])
def test_interrupt_removes_the_benchmark_keys(tmp_path: Path, redis_url: str,
                                              redis_client: redis.Redis, during: str) -> None:
    from cachectl.errors import InterruptedWork

    def interrupt(task: str, done: int, total: int | None = None) -> None:
        if task == during and done > 0:
            raise KeyboardInterrupt

    policy = load_policy(write_policy(tmp_path), env={})
    client = redis.Redis.from_url(redis_url)
    started = time.monotonic()
    with pytest.raises(InterruptedWork) as caught:
        run_bench(client, endpoint_of(client, url=redis_url), policy, BenchConfig(
            namespaces=("price",), duration_ms=60_000, warmup_ms=0, keys=3000, value_size=16,
            clients=2), on_progress=interrupt)
    client.close()
    assert time.monotonic() - started < 20  # not the minute the run was given
    assert "keys were removed" in caught.value.message
    assert caught.value.partial.interrupted
    assert redis_client.dbsize() == 0


def test_a_write_volume_that_could_crowd_out_the_cache_is_refused(
        tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> None:
    from cachectl.errors import UsageError

    with pytest.raises(UsageError, match="would write ~") as caught:
        bench(write_policy(tmp_path), redis_url, BenchConfig(
            namespaces=("price",), requests=10, duration_ms=None, keys=300_000,
            value_size=1024))
    assert "--existing" in (caught.value.hint or "")
    assert redis_client.dbsize() == 0  # refused before anything was written


def test_a_namespace_marked_hot_is_judged_by_the_hot_threshold(
        tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "hot.yaml"
    path.write_text('version: 1\nredis: {key_prefix: shop}\nnamespaces:\n'
                    '  banner: {key: "banner:{slot}", ttl: 15m, hot: true}\n'
                    '  cart: {key: "cart:{user_id}", ttl: 30m}\n')
    result = bench(path, redis_url, BenchConfig(
        requests=50, duration_ms=None, warmup_ms=0, keys=10, value_size=16))
    banner, cart = result.runs
    assert (banner.threshold, banner.threshold_p99_ms) == ("latency_hot_p99_ms", 10)
    assert banner.mode is BenchMode.CACHED and banner.working_set == 10  # every key
    assert (cart.threshold, cart.threshold_p99_ms) == ("latency_cached_p99_ms", 50)
