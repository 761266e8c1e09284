"""The optional L1: served in-process, kept coherent across instances by pub/sub."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cachectl import AsyncCache, Cache
from cachectl.policy import Policy, load_policy
from tests.support.cache import QUIET, wait_for, write_policy

L1 = {**QUIET, "l1_max_items": 100, "l1_ttl_ms": 60_000}


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(write_policy(tmp_path))


@pytest.fixture
def pair(policy: Policy, redis_url: str) -> Iterator[Callable[[], tuple[Cache, Cache]]]:
    made: list[Cache] = []

    def make() -> tuple[Cache, Cache]:
        a = Cache.from_policy(policy, redis_url, env={}, **L1)
        b = Cache.from_policy(policy, redis_url, env={}, **L1)
        made.extend((a, b))
        assert wait_for(lambda: a.l1_active and b.l1_active)
        return a, b

    yield make
    for cache in made:
        cache.close()


def test_l1_serves_without_redis_and_counts_fresh_hits(pair, redis_client) -> None:
    a, _ = pair()
    a.set("plain", {"v": 1}, id=1)
    assert a.get_or_load("plain", lambda: None, id=1) == {"v": 1}
    redis_client.delete("t:plain:1")  # behind the caches' backs: no invalidation message
    assert a.get_or_load("plain", lambda: {"v": "origin"}, id=1) == {"v": 1}
    assert a.local_counters()["plain"].fresh_hits == 2


def test_l1_is_coherent_across_instances(pair) -> None:
    a, b = pair()
    a.set("plain", "one", id=1)
    assert a.get_or_load("plain", lambda: "x", id=1) == "one"
    assert b.get_or_load("plain", lambda: "x", id=1) == "one"
    b.set("plain", "two", id=1)
    assert wait_for(lambda: a.get_or_load("plain", lambda: "x", id=1) == "two")
    b.invalidate("plain", id=1)
    assert wait_for(lambda: a.get("plain", id=1) is None)
    a.set("plain", "three", id=2)
    assert b.get_or_load("plain", lambda: "x", id=2) == "three"
    a.invalidate_tag("cat")
    assert wait_for(lambda: b.get("plain", id=2) is None)


def test_l1_never_outlives_the_fresh_time(pair, redis_client) -> None:
    a, _ = pair()
    redis_client.set("t:item:1", b'"v"', px=10_000 + 150)  # fresh for 150 ms more
    assert a.get_or_load("item", lambda: "new", id=1) == "v"
    redis_client.set("t:item:1", b'"behind"', px=19_000)  # no message: only expiry helps
    assert a.get_or_load("item", lambda: "new", id=1) == "v"
    assert wait_for(lambda: a.get_or_load("item", lambda: "new", id=1) == "behind", 2)


def test_async_l1_is_coherent_across_instances(policy: Policy, redis_url: str) -> None:
    async def main() -> list[Any]:
        async with AsyncCache.from_policy(policy, redis_url, env={}, **L1) as a, \
                AsyncCache.from_policy(policy, redis_url, env={}, **L1) as b:
            for _ in range(200):
                if a.l1_active and b.l1_active:
                    break
                await asyncio.sleep(0.01)
            seen = []
            await a.set("plain", "one", id=1)
            seen.append(await b.get_or_load("plain", lambda: "x", id=1))
            await a.set("plain", "two", id=1)
            for _ in range(200):
                value = await b.get_or_load("plain", lambda: "x", id=1)
                if value == "two":
                    break
                await asyncio.sleep(0.01)
            seen.append(value)
            return seen

    assert asyncio.run(main()) == ["one", "two"]
