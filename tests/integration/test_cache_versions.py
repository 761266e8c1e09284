"""Versioned keys through the library: a rolling deploy with half the readers on version
N-1 and half on N (read_previous + migrate), against a real redis-server."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest
import redis

from cachectl import AsyncCache, Cache
from cachectl.errors import UsageError
from cachectl.policy import load_policy
from tests.support.cache import QUIET, counters, wait_for

V1 = """\
version: 1
redis: {key_prefix: t}
namespaces:
  product: {key: "product:{id}", ttl: 1h, version: 1}
"""
V2 = V1.replace("version: 1}", "version: 2, read_previous: true}")
IDS = range(200)


def old_shape(i: int) -> dict[str, Any]:
    return {"name": f"n{i}"}


def new_shape(i: int) -> dict[str, Any]:
    return {"title": f"n{i}", "schema": 2}


def migrate(old: dict[str, Any]) -> dict[str, Any]:
    return {"title": old["name"], "schema": 2}


def test_rolling_deploy_serves_no_error_and_no_wrong_shape(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "v1.yaml").write_text(V1)
    (tmp_path / "v2.yaml").write_text(V2)
    old = Cache.from_policy(tmp_path / "v1.yaml", redis_url, **QUIET)
    new = Cache.from_policy(tmp_path / "v2.yaml", redis_url, migrate={"product": migrate}, **QUIET)
    warmed = IDS[:100]  # the old fleet has cached these before the deploy starts
    for i in warmed:
        old.get_or_load("product", lambda i=i: old_shape(i), id=i)
    origin_v2: list[int] = []
    errors: list[BaseException] = []
    wrong: list[tuple[str, int, Any]] = []

    def reader(cache: Cache, version: int, seed: int) -> None:
        rng = random.Random(seed)  # sampling, not security
        for _ in range(400):
            i = rng.choice(IDS)
            try:
                if version == 1:
                    value = cache.get_or_load("product", lambda i=i: old_shape(i), id=i)
                    ok = value == old_shape(i)
                else:
                    def load(i: int = i) -> dict[str, Any]:
                        origin_v2.append(i)
                        return new_shape(i)
                    value = cache.get_or_load("product", load, id=i)
                    ok = value == new_shape(i)
            except Exception as exc:
                errors.append(exc)
                continue
            if not ok:
                wrong.append((f"v{version}", i, value))

    threads = [threading.Thread(target=reader, args=(old if n % 2 else new, 1 if n % 2 else 2, n))
               for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == [] and wrong == []
        # every key the old fleet had cached was migrated, never loaded from the origin
        assert not set(origin_v2) & set(warmed)
        local = new.local_counters()["product"]
        assert 0 < local.previous_hits <= local.misses  # a subset of the misses
        assert redis_client.get("t:product:v2:7") is not None
        assert new.flush_counters()
        assert wait_for(lambda: counters(redis_client, "product").get("previous_hits", 0)
                        == local.previous_hits)
    finally:
        old.close()
        new.close()


def test_without_migrate_the_previous_version_is_not_read(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "v2.yaml").write_text(V2)
    redis_client.set("t:product:v1:1", b'{"name":"n1"}', px=60_000)
    with Cache.from_policy(tmp_path / "v2.yaml", redis_url, **QUIET) as cache:
        assert cache.get_or_load("product", lambda: new_shape(1), id=1) == new_shape(1)
        assert cache.local_counters()["product"].previous_hits == 0


def test_migrate_for_a_namespace_that_reads_no_previous_version_is_refused(
        redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "v1.yaml").write_text(V1)
    with pytest.raises(UsageError, match="does not read a previous version"):
        Cache.from_policy(load_policy(tmp_path / "v1.yaml"), redis_url, migrate={"product": migrate})


async def _async_migrates(redis_url: str, path: Path) -> tuple[Any, int]:
    async with AsyncCache.from_policy(path, redis_url, migrate={"product": migrate},
                                      **QUIET) as cache:
        async def origin() -> dict[str, Any]:
            raise AssertionError("the origin must not be asked")
        value = await cache.get_or_load("product", origin, id=5)
        return value, cache.local_counters()["product"].previous_hits


def test_the_async_cache_migrates_too(redis_url: str, redis_client: redis.Redis,
                                      tmp_path: Path) -> None:
    import asyncio

    (tmp_path / "v2.yaml").write_text(V2)
    redis_client.set("t:product:v1:5", b'{"name":"n5"}', px=60_000)
    assert asyncio.run(_async_migrates(redis_url, tmp_path / "v2.yaml")) == (new_shape(5), 1)
    assert redis_client.get("t:product:v2:5") == b'{"title":"n5","schema":2}'
