"""Cache and AsyncCache on a real Redis Cluster: keys, locks and counters on different slots."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import RedisCluster

from cachectl import AsyncCache, Cache
from cachectl.connection import build_settings
from cachectl.counter_format import read_window
from cachectl.policy import load_policy
from tests.support.cache import FRESH_PTTL, STALE_PTTL, wait_for, write_policy
from tests.support.cluster import RedisClusterFixture

pytestmark = pytest.mark.slow
OPTIONS = {"timeout_ms": 2000, "connect_timeout_ms": 2000, "counters_interval_s": 0.05}


def _counters(client: Any) -> dict[str, Any]:
    minute = int(time.time() // 60)
    return read_window(client, "t:cachectl", range(minute - 2, minute + 2))


def test_cache_on_a_cluster(cluster: RedisClusterFixture, tmp_path: Path) -> None:
    cluster.wait_healthy()
    for node in cluster.primary_servers():
        node.client().flushall()
    policy = load_policy(write_policy(tmp_path))
    settings = build_settings(url_flag=cluster.url, env={}, cluster=True)
    raw = RedisCluster.from_url(cluster.url)
    try:
        with Cache.from_policy(policy, settings=settings, env={}, **OPTIONS) as cache:
            for i in range(20):
                assert cache.get_or_load("plain", lambda i=i: {"id": i}, id=i) == {"id": i}
            assert all(raw.get(f"t:plain:{i}") == b'{"id":%d}' % i for i in range(20))
            assert cache.get_or_load("plain", lambda: "no", id=3) == {"id": 3}
            raw.set("t:item:1", b'"old"', px=STALE_PTTL)
            assert cache.get_or_load("item", lambda: "new", id=1) == "old"
            assert wait_for(lambda: raw.get("t:item:1") == b'"new"')
            assert raw.pttl("t:item:1") > FRESH_PTTL - 10_000
            assert cache.soft_invalidate("item", id=1) is True
            assert raw.pttl("t:item:1") <= 10_000
            assert cache.invalidate_tag("cat") == 21  # spread over the three primaries
            assert cache.local_counters()["plain"].redis_errors == 0
        got = _counters(raw)
        assert (got["plain"].misses, got["plain"].fresh_hits) == (20, 1)
        assert (got["item"].stale_hits, got["item"].refreshes) == (1, 1)

        async def main() -> list[Any]:
            async with AsyncCache.from_policy(policy, settings=settings, env={},
                                              **OPTIONS) as acache:
                first = await acache.get_or_load("plain", lambda: "a", id=1)
                second = await acache.get_or_load("plain", lambda: "b", id=1)
                raw.set("t:item:2", b'"old"', px=STALE_PTTL)
                stale = await acache.get_or_load("item", lambda: "new", id=2)
                for _ in range(200):
                    if raw.get("t:item:2") == b'"new"':
                        break
                    await asyncio.sleep(0.01)
                refreshed = raw.get("t:item:2")
                for i in range(10):
                    await acache.set("plain", i, id=i)
                removed = await acache.invalidate_tag("cat")
                return [first, second, stale, refreshed, removed]

        assert asyncio.run(main()) == ["a", "a", "old", b'"new"', 11]
    finally:
        raw.close()


def test_the_trace_is_spread_over_the_primaries_and_the_model_reads_it_back(
        cluster: RedisClusterFixture, tmp_path: Path) -> None:
    from cachectl.cache.trace import stream_keys
    from cachectl.counter_format import write_buckets
    from cachectl.model.stream import dropped_events, read_stream_trace
    from tests.support.cache import POLICY

    cluster.wait_healthy()
    for node in cluster.primary_servers():
        node.client().flushall()
    policy = load_policy(write_policy(tmp_path, POLICY + "trace: {sample: 100%}\n"))
    settings = build_settings(url_flag=cluster.url, env={}, cluster=True)
    raw = RedisCluster.from_url(cluster.url)
    try:
        with Cache.from_policy(policy, settings=settings, env={}, **OPTIONS) as cache:
            for _ in range(2):
                for i in range(200):
                    cache.get_or_load("plain", lambda: "v", id=i)
        streams = stream_keys("t:cachectl")
        lengths = {key: raw.xlen(key) for key in streams}
        assert sum(lengths.values()) == 400 and all(n > 0 for n in lengths.values())
        # the four hash tags land on every primary of the three
        owners = {raw.get_node_from_key(key).name for key in streams}  # type: ignore[no-untyped-call]
        assert len(owners) == 3
        trace = read_stream_trace(raw, policy)
        assert len(trace) == 400 and trace.sample_rate == 1.0
        assert list(trace.time_s) == sorted(trace.time_s)
        # the drop counts are read from minute buckets on several slots
        first = float(trace.time_s[0])
        assert dropped_events(raw, policy, first) == {}
        pipe = raw.pipeline(transaction=False)
        minute = int(first // 60)
        write_buckets(pipe, "t:cachectl", {minute: {("plain", "trace_dropped"): 2},
                                           minute - 1: {("other", "trace_dropped"): 1}})
        pipe.execute()
        assert dropped_events(raw, policy, first - 60) == {"other": 1, "plain": 2}
    finally:
        raw.close()
