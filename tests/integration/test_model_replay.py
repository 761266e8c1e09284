"""`cachectl model` against a real redis-server: a trace replayed through cachectl.Cache with the
recommended TTL, at the recommended maxmemory and at two smaller ones (allkeys-lru), gets the hit
rate the Redis-LRU curve predicts, within 2 points.

The replay is paced to the trace's times; on a loaded machine it can fall behind, and then keys
expire after fewer requests than the trace says. So each replay records when each request was
really made, and the prediction it is judged against is the model of that trace: the trace as it
happened, which is what the library's capture would record."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.redis_server import RedisServer

pytest.importorskip("numba")

from cachectl import Cache
from cachectl.model import ModelOptions, Trace, model_trace
from cachectl.policy import load_policy

KEYS = 8000
REQUESTS = 16_000
RATE_PER_S = 400.0  # paced replay: the trace's times are the replay's, within the pacing error


def make_trace(seed: int = 3) -> tuple[Trace, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.arange(1, KEYS + 1, dtype=np.float64) ** -0.9
    p /= p.sum()
    ids = rng.choice(KEYS, size=REQUESTS, p=p)
    json_bytes = rng.integers(200, 1500, size=KEYS)  # the stored JSON string, quotes included
    times = np.arange(REQUESTS) / RATE_PER_S
    from cachectl.model import key_hash

    hashes = np.array([key_hash(f"m:product:{i}".encode()) for i in range(KEYS)], dtype=np.uint64)
    trace = Trace(time_s=times, key_hash=hashes[ids], size=json_bytes[ids].astype(np.int64),
                  ns=np.zeros(REQUESTS, dtype=np.int32), namespaces=("product",))
    return trace, ids, json_bytes


def write_policy(path: Path, ttl: str) -> Path:
    path.write_text("version: 1\nredis: {key_prefix: m}\nthresholds: {hit_rate: 0.55}\n"
                    f'namespaces:\n  product: {{key: "product:{{id}}", ttl: {ttl}}}\n')
    return path


def key_overhead(client: object, json_bytes: np.ndarray) -> int:
    """used_memory per key beyond its value on this server, for values of this trace's sizes."""
    import redis

    assert isinstance(client, redis.Redis)
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    pipe = client.pipeline(transaction=False)
    for i in range(4000):
        pipe.set(f"m:product:{i + 100_000}", b"x" * int(json_bytes[i % KEYS]), px=600_000)
    pipe.execute()
    grown = int(client.info("memory")["used_memory"]) - before
    client.flushall()
    return round(grown / 4000 - float(np.mean([json_bytes[i % KEYS] for i in range(4000)])))


def replay(server: RedisServer, policy: Path, ids: np.ndarray, json_bytes: np.ndarray,
           maxmemory: int) -> tuple[float, np.ndarray]:
    """The hit rate measured (1 - loads / requests), and the time of each request from the first."""
    client = server.client()
    client.flushall()
    client.config_set("maxmemory", 0)
    loads = 0

    def loader(i: int) -> Callable[[], str]:
        def load() -> str:
            nonlocal loads
            loads += 1
            return "x" * (int(json_bytes[i]) - 2)
        return load

    # the library's 10 ms call timeout and its breaker treat a slow Redis as a missing one, and a
    # loaded test machine is slow now and then: the model has no such fault, so give it time
    with Cache.from_policy(str(policy), server.url, timeout_ms=5000, connect_timeout_ms=5000) as cache:
        cache.get_or_load("product", loader(0), id=0)  # connections and counters exist first
        client.delete("m:product:0")
        baseline = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", baseline + maxmemory)
        loads = 0
        when = np.zeros(len(ids))
        start = time.monotonic()
        for n, i in enumerate(ids):
            wait = start + n / RATE_PER_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            when[n] = time.monotonic() - start
            cache.get_or_load("product", loader(int(i)), id=int(i))
    client.config_set("maxmemory", 0)
    client.close()
    return 1 - loads / len(ids), when


@pytest.mark.slow
def test_replayed_hit_rate_is_within_two_points_of_the_redis_lru_curve(
        tmp_path: Path, redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory("--maxmemory-policy", "allkeys-lru")
    trace, ids, json_bytes = make_trace()
    client = server.client()
    overhead = key_overhead(client, json_bytes)
    client.close()
    assert 40 < overhead < 400
    policy = load_policy(write_policy(tmp_path / "model.yaml", "1h"))
    first = model_trace(trace, policy, ModelOptions(ttls_s=(5.0, 10.0, 20.0, 40.0), exact=True,
                                                     key_overhead=overhead))
    rec = first.namespaces[0].recommend
    assert rec.ttl_s is not None and rec.memory_bytes is not None
    working_set = sum(int(json_bytes[i]) + overhead for i in np.unique(ids))
    sizes = (rec.memory_bytes, working_set // 4, working_set // 10)
    report = model_trace(trace, policy, ModelOptions(ttls_s=(rec.ttl_s,), memory_bytes=sizes, exact=True,
                                                      key_overhead=overhead))
    at = {p.bytes: p for p in report.namespaces[0].memory_curve}
    replay_policy = write_policy(tmp_path / "replay.yaml", f"{int(rec.ttl_s)}s")
    results = []
    for size in sizes:
        measured, when = replay(server, replay_policy, ids, json_bytes, size)
        as_replayed = Trace(time_s=when, key_hash=trace.key_hash, size=trace.size, ns=trace.ns,
                            namespaces=trace.namespaces)
        replayed = model_trace(as_replayed, policy, ModelOptions(
            ttls_s=(rec.ttl_s,), memory_bytes=(size,), exact=True, key_overhead=overhead))
        point = {p.bytes: p for p in replayed.namespaces[0].memory_curve}[size]
        lag = float(when[-1] - trace.time_s[-1])
        results.append((size, at[size].redis_lru_hit_rate, point.redis_lru_hit_rate, measured, lag))
    print(f"\nttl {rec.ttl_s:g}s, key overhead {overhead} B; maxmemory: Redis-LRU predicted on the "
          "trace / on the trace as replayed, measured, replay lag")
    for size, nominal, predicted, measured, lag in results:
        print(f"  {size:>10,} B  {nominal:.4f} / {predicted:.4f}  {measured:.4f}  {lag:.1f} s")
    for size, _, predicted, measured, _ in results:
        assert predicted is not None
        assert abs(measured - predicted) <= 0.02, f"maxmemory {size}: {measured:.4f} vs {predicted:.4f}"
    # the sizes are on different parts of the curve
    assert results[0][3] - results[2][3] > 0.1
