"""cachectl.AsyncCache against a real redis-server: the same semantics as Cache."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cachectl import AsyncCache
from cachectl.cache import KeyParamError, LoadTimeoutError
from cachectl.errors import UsageError
from cachectl.freshness import Freshness, classify
from cachectl.policy import Policy, load_policy
from tests.integration.test_cache_sync import (
    FAIL_SAFE_PTTL,
    FRESH_PTTL,
    QUIET,
    STALE_PTTL,
    counters,
    put,
    write_policy,
)


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(write_policy(tmp_path))


class AsyncLoader:
    def __init__(self, value: Any = None, delay_s: float = 0.0, error: Exception | None = None):
        self.value, self.delay_s, self.error = value, delay_s, error
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.value


def run(policy: Policy, url: str, body: Callable[[AsyncCache], Awaitable[Any]],
        **options: Any) -> Any:
    async def main() -> Any:
        async with AsyncCache.from_policy(policy, url, env={}, **{**QUIET, **options}) as cache:
            return await body(cache)

    return asyncio.run(main())


async def until(predicate: Callable[[], Any], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())


def test_fresh_stale_fail_safe_and_miss(policy, redis_url, redis_client) -> None:
    put(redis_client, "t:item:1", "fresh", FRESH_PTTL)
    put(redis_client, "t:item:2", "stale", STALE_PTTL)
    put(redis_client, "t:item:3", "fail-safe", FAIL_SAFE_PTTL)
    loader = AsyncLoader("loaded")

    async def body(cache: AsyncCache) -> Any:
        got = [await cache.get_or_load("item", loader, id=i) for i in (1, 2, 3, 4)]
        await until(lambda: redis_client.get("t:item:2") == b'"loaded"')
        return got, cache.local_counters()["item"]

    got, c = run(policy, redis_url, body)
    assert got == ["fresh", "stale", "loaded", "loaded"]
    assert (c.fresh_hits, c.stale_hits, c.misses, c.refreshes, loader.calls) == (1, 1, 2, 1, 3)
    assert classify(redis_client.pttl("t:item:2"), policy.namespace("item")) is Freshness.FRESH
    assert redis_client.get("t:item:4") == b'"loaded"'


def test_sync_loaders_work_too(policy, redis_url) -> None:
    async def body(cache: AsyncCache) -> Any:
        return await cache.get_or_load("plain", lambda: {"sync": True}, id=1)

    assert run(policy, redis_url, body) == {"sync": True}


def test_100_tasks_on_one_stale_key_load_it_exactly_once(policy, redis_url, redis_client) -> None:
    put(redis_client, "t:item:1", "old", STALE_PTTL)
    loader = AsyncLoader("new", delay_s=0.05)

    async def body(cache: AsyncCache) -> list[Any]:
        results = await asyncio.gather(*(cache.get_or_load("item", loader, id=1)
                                         for _ in range(100)))
        await until(lambda: redis_client.get("t:item:1") == b'"new"')
        results += await asyncio.gather(*(cache.get_or_load("item", loader, id=1)
                                          for _ in range(100)))
        return list(results)

    results = run(policy, redis_url, body)
    assert loader.calls == 1
    assert results[:100] == ["old"] * 100 and results[100:] == ["new"] * 100


def test_two_async_instances_on_one_stale_key_load_it_once(policy, redis_url,
                                                           redis_client) -> None:
    put(redis_client, "t:item:1", "old", STALE_PTTL)
    loader = AsyncLoader("new", delay_s=0.1)

    async def main() -> None:
        async with AsyncCache.from_policy(policy, redis_url, env={}, **QUIET) as a, \
                AsyncCache.from_policy(policy, redis_url, env={}, **QUIET) as b:
            await asyncio.gather(*(c.get_or_load("item", loader, id=1)
                                   for c in (a, b) * 10))
            await until(lambda: redis_client.get("t:item:1") == b'"new"')

    asyncio.run(main())
    assert loader.calls == 1


def test_concurrent_misses_share_one_load_and_its_error(policy, redis_url) -> None:
    ok, bad = AsyncLoader("v", delay_s=0.1), AsyncLoader(error=LookupError("gone"), delay_s=0.1)

    async def body(cache: AsyncCache) -> Any:
        values = await asyncio.gather(*(cache.get_or_load("item", ok, id=1) for _ in range(30)))
        errors = await asyncio.gather(*(cache.get_or_load("item", bad, id=2) for _ in range(30)),
                                      return_exceptions=True)
        return values, errors

    values, errors = run(policy, redis_url, body)
    assert values == ["v"] * 30 and ok.calls == 1
    assert bad.calls == 1 and all(isinstance(e, LookupError) for e in errors)


def test_loader_error_with_and_without_fail_safe(policy, redis_url, redis_client) -> None:
    put(redis_client, "t:item:3", "fail-safe", FAIL_SAFE_PTTL)
    error = ValueError("origin down")
    bad = AsyncLoader(error=error)

    async def body(cache: AsyncCache) -> Any:
        served = [await cache.get_or_load("item", bad, id=3) for _ in range(4)]
        with pytest.raises(ValueError) as raised:
            await cache.get_or_load("item", bad, id=4)
        assert raised.value is error
        return served, cache.local_counters()["item"]

    served, c = run(policy, redis_url, body, fail_safe_throttle_ms=5_000)
    assert served == ["fail-safe"] * 4
    assert bad.calls == 2  # once for the fail-safe key (then throttled), once for the miss
    assert (c.fail_safe_hits, c.refresh_errors, c.misses) == (4, 2, 1)
    assert redis_client.pttl("t:cachectl:lock:t:item:3") > 4_000


def test_soft_timeout_serves_fail_safe_and_finishes_in_background(policy, redis_url,
                                                                  redis_client) -> None:
    put(redis_client, "t:item:3", "old", FAIL_SAFE_PTTL)
    slow = AsyncLoader("new", delay_s=0.3)

    async def body(cache: AsyncCache) -> Any:
        started = time.monotonic()
        value = await cache.get_or_load("item", slow, id=3)
        elapsed = time.monotonic() - started
        await until(lambda: redis_client.get("t:item:3") == b'"new"')
        return value, elapsed

    value, elapsed = run(policy, redis_url, body, soft_timeout_ms=50)
    assert value == "old" and elapsed < 0.25
    assert redis_client.get("t:item:3") == b'"new"'


def test_hard_timeout_for_waiters(policy, redis_url) -> None:
    slow = AsyncLoader("v", delay_s=0.3)

    async def body(cache: AsyncCache) -> Any:
        return await asyncio.gather(*(cache.get_or_load("item", slow, id=1) for _ in range(3)),
                                    return_exceptions=True)

    results = run(policy, redis_url, body, hard_timeout_ms=50)
    assert results.count("v") == 1  # the leader (whichever task's read came back first)
    assert sum(isinstance(r, LoadTimeoutError) for r in results) == 2
    assert slow.calls == 1


def test_api_errors_decorator_invalidation(policy, redis_url, redis_client) -> None:
    async def body(cache: AsyncCache) -> None:
        with pytest.raises(UsageError, match="no namespace"):
            await cache.get("itme", id=1)
        with pytest.raises(KeyParamError):
            await cache.get_or_load("item", AsyncLoader(1), sku=1)

        @cache.cached("search")
        async def search(query: str, page: int = 1) -> list[str]:
            return [query] * page

        assert await search("lamp", page=2) == ["lamp", "lamp"]
        assert len(redis_client.keys("t:search:*")) == 1
        assert await cache.set("item", 1, id=1) is True
        assert await cache.soft_invalidate("item", id=1) is True
        assert classify(redis_client.pttl("t:item:1"),
                        policy.namespace("item")) is Freshness.STALE
        assert await cache.invalidate("item", id=1) is True
        assert await cache.get("item", id=1) is None
        await cache.set("plain", 1, id=1)
        await cache.set("other", 1, id=1)
        assert await cache.invalidate_tag("cat") == 1  # plain:1 (item:1 is gone already)
        assert redis_client.keys("t:other:*") == [b"t:other:1"]

    run(policy, redis_url, body)


def test_counters_read_back_and_no_task_or_thread_left(policy, redis_url, redis_client) -> None:
    put(redis_client, "t:item:1", "fresh", FRESH_PTTL)
    threads_before = set(threading.enumerate())

    async def main() -> set[asyncio.Task[Any]]:
        before = asyncio.all_tasks()
        cache = AsyncCache.from_policy(policy, redis_url, env={}, **QUIET)
        for _ in range(6):
            await cache.get_or_load("item", AsyncLoader("x"), id=1)
        for i in range(3):
            await cache.get_or_load("item", AsyncLoader("x"), id=10 + i)
        await cache.close()
        return asyncio.all_tasks() - before

    assert asyncio.run(main()) == set()
    assert set(threading.enumerate()) - threads_before == set()
    got = counters(redis_client, "item")
    assert (got["fresh_hits"], got["misses"], got["loads"]) == (6, 3, 3)
