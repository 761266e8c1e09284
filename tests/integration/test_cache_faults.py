"""Redis killed, restarted or stalled under a running Cache/AsyncCache: callers never see it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from cachectl import AsyncCache, Cache
from cachectl.policy import load_policy
from tests.support.cache import counters, put, wait_for, write_policy
from tests.support.redis_server import stall

FAST = {"timeout_ms": 100, "connect_timeout_ms": 100, "breaker_failures": 3,
        "breaker_reset_ms": 100, "counters_interval_s": 0.05}
FOUR = ("fresh_hits", "stale_hits", "fail_safe_hits", "misses")


def loader_for(i: int) -> Any:
    return lambda: {"id": i}


def test_server_killed_and_restarted_mid_run(redis_factory, tmp_path: Path) -> None:
    server = redis_factory()
    policy = load_policy(write_policy(tmp_path))
    cache = Cache.from_policy(policy, server.url, env={}, **FAST)
    try:
        calls_before = 0
        for i in range(40):
            assert cache.get_or_load("plain", loader_for(i % 10), id=i % 10) == {"id": i % 10}
            calls_before += 1
        assert wait_for(cache.flush_counters)  # (a busy machine may time one out)
        server.kill()  # counters flushed so far die with the server's data
        calls_after = 0
        started = time.monotonic()
        for i in range(200):
            assert cache.get_or_load("plain", loader_for(i % 10), id=i % 10) == {"id": i % 10}
            calls_after += 1
        assert time.monotonic() - started < 5  # the breaker keeps callers from waiting
        assert cache.breaker_state in ("open", "half_open")
        local = cache.local_counters()["plain"]
        assert local.redis_errors >= 200
        # while Redis is gone the fallback LRU serves what was loaded during the outage
        assert local.loads < 10 + 10 + 5
        server.start()

        def recovered() -> bool:
            nonlocal calls_after
            cache.get_or_load("plain", loader_for(1), id=1)
            calls_after += 1
            return cache.breaker_state == "closed" and server.client().exists("t:plain:1") == 1

        assert wait_for(recovered, timeout_s=10)
    finally:
        cache.close()
    got = counters(server.client(), "plain")
    assert sum(got[name] for name in FOUR) == calls_after  # counters resumed, none lost
    assert got["redis_errors"] == cache.local_counters()["plain"].redis_errors
    assert calls_before + calls_after == sum(getattr(cache.local_counters()["plain"], n)
                                             for n in FOUR)


def test_a_stalled_server_costs_each_caller_at_most_the_timeout(redis_factory,
                                                                 tmp_path: Path) -> None:
    server = redis_factory()
    policy = load_policy(write_policy(tmp_path))
    with Cache.from_policy(policy, server.url, env={}, **{**FAST, "breaker_reset_ms": 5000}) as cache:
        put(server.client(), "t:plain:1", "v", 600_000)  # not through the 100 ms timeout
        sleeper = stall(server, 2)
        slowest = 0.0
        for _ in range(50):
            t = time.monotonic()
            assert cache.get_or_load("plain", lambda: "origin", id=1) in ("v", "origin")
            slowest = max(slowest, time.monotonic() - t)
        sleeper.join()
        assert slowest < 0.5
        assert cache.breaker_state == "open"
        c = cache.local_counters()["plain"]
        assert c.redis_errors == 51  # 50 reads, and the write of the one value loaded
        assert (c.misses, c.fresh_hits) == (1, 49)  # then served by the fallback store


def test_cache_built_while_redis_is_down_works_and_counts(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path))
    with Cache.from_policy(policy, "redis://127.0.0.1:1/0", env={}, **FAST) as cache:
        assert cache.get_or_load("plain", lambda: 5, id=1) == 5
        assert cache.get("plain", id=1) == 5  # the fallback store
        assert cache.set("plain", 6, id=1) is False
        assert cache.invalidate("plain", id=1) is False
        assert cache.get("plain", id=1) is None
        c = cache.local_counters()["plain"]
        assert c.redis_errors == 6 and c.misses == 2 and c.fresh_hits == 1


@pytest.mark.slow
def test_async_server_killed_and_restarted_mid_run(redis_factory, tmp_path: Path) -> None:
    server = redis_factory()
    policy = load_policy(write_policy(tmp_path))

    async def main() -> tuple[int, Any, Any]:
        cache = AsyncCache.from_policy(policy, server.url, env={}, **FAST)
        calls_after = 0
        try:
            for i in range(40):
                assert await cache.get_or_load("plain", loader_for(i % 10), id=i % 10) == {"id": i % 10}
            for _ in range(50):  # (a busy machine may time one out)
                if await cache.flush_counters():
                    break
            server.kill()
            for i in range(200):
                assert await cache.get_or_load("plain", loader_for(i % 10), id=i % 10) == {"id": i % 10}
                calls_after += 1
            assert cache.breaker_state in ("open", "half_open")
            await asyncio.to_thread(server.start)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                await cache.get_or_load("plain", loader_for(1), id=1)
                calls_after += 1
                if cache.breaker_state == "closed" and server.client().exists("t:plain:1"):
                    break
                await asyncio.sleep(0.02)
            assert cache.breaker_state == "closed"
        finally:
            await cache.close()
        return calls_after, cache.local_counters()["plain"], counters(server.client(), "plain")

    calls_after, local, got = asyncio.run(main())
    assert sum(got[name] for name in FOUR) == calls_after
    assert got["redis_errors"] == local.redis_errors >= 200


def test_a_counter_write_that_times_out_is_never_counted_twice(redis_factory,
                                                                tmp_path: Path) -> None:
    """The server applies a write whose reply the client gave up on: re-sending it would
    count those calls twice, so a timed-out write is dropped instead (at most once)."""
    server = redis_factory()
    policy = load_policy(write_policy(tmp_path))
    options = {**FAST, "timeout_ms": 200, "counters_interval_s": 3600}
    with Cache.from_policy(policy, server.url, env={}, **options) as cache:
        cache.set("plain", "v", id=1)
        for _ in range(25):
            assert cache.get("plain", id=1) == "v"
        sleeper = stall(server, 1.5)
        assert cache.flush_counters() is False  # sent, then the reply timed out
        sleeper.join()
        assert wait_for(lambda: counters(server.client(), "plain").get("fresh_hits") == 25)
        assert cache.flush_counters() is True
        assert counters(server.client(), "plain")["fresh_hits"] == 25
        assert cache.counters_dropped == 25
    # close() wrote whatever was left: the 25 hits landed exactly once
    assert counters(server.client(), "plain")["fresh_hits"] == 25


def test_an_async_counter_write_that_times_out_is_never_counted_twice(redis_factory,
                                                                      tmp_path: Path) -> None:
    server = redis_factory()
    policy = load_policy(write_policy(tmp_path))
    options = {**FAST, "timeout_ms": 200, "counters_interval_s": 3600}

    async def main() -> tuple[bool, bool, int, int]:
        async with AsyncCache.from_policy(policy, server.url, env={}, **options) as cache:
            await cache.set("plain", "v", id=1)
            for _ in range(25):
                assert await cache.get("plain", id=1) == "v"
            sleeper = await asyncio.to_thread(stall, server, 1.5)
            timed_out = await cache.flush_counters()  # sent, then the reply timed out
            await asyncio.to_thread(sleeper.join)
            assert await asyncio.to_thread(
                wait_for, lambda: counters(server.client(), "plain").get("fresh_hits") == 25)
            again = await cache.flush_counters()
            return timed_out, again, counters(server.client(), "plain")["fresh_hits"], \
                cache.counters_dropped

    assert asyncio.run(main()) == (False, True, 25, 25)
