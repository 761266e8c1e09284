# generated from test_cache_async.py by scripts/async_to_sync.py, do not edit
"""cachectl.AsyncCache against a real redis-server: the four states, single-flight, fail-safe, API.

The source of test_cache_sync.py, which scripts/async_to_sync.py generates from this
module (``AsyncCache`` -> ``Cache``, tasks -> threads through tests/support/acompat.py),
so both caches are held to every behaviour here.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cachectl import Cache
from cachectl.cache import KeyParamError, LoadTimeoutError, ValueTooLargeError
from cachectl.errors import UsageError
from cachectl.freshness import Freshness, classify, ttl_bounds_ms
from cachectl.policy import Policy, load_policy
from tests.support.acompat import (
    Barrier,
    Event,
    current_thread,
    join,
    running_threads,
    sleep,
    spawn,
    until,
)
from tests.support.cache import (
    FAIL_SAFE_PTTL,
    FRESH_PTTL,
    PATIENT,
    POLICY,
    QUIET,
    STALE_PTTL,
    counters,
    put,
    write_policy,
)
from tests.support.reliability import Recorder


class Loader:
    """A loader that counts its calls, optionally slow or failing."""

    def __init__(
        self,
        value: Any = None,
        delay_s: float = 0.0,
        error: Exception | None = None,
        gate: Event | None = None,
    ):
        self.value, self.delay_s, self.error, self.gate = value, delay_s, error, gate
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        if self.gate is not None:  # held until the test opens it (or 10 s passed)
            self.gate.wait_timeout(10)
        if self.delay_s:
            sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(write_policy(tmp_path))


@pytest.fixture
def make_cache(policy: Policy, redis_url: str) -> Iterator[Callable[..., Cache]]:
    made: list[Cache] = []

    def make(**options: Any) -> Cache:
        cache = Cache.from_policy(policy, redis_url, env={}, **{**QUIET, **options})
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


# ------------------------------------------------------------------ the four states


def test_fresh_hit_returns_value_without_loading(make_cache, redis_client) -> None:
    put(redis_client, "t:item:1", {"v": 1}, FRESH_PTTL)
    loader = Loader({"v": 2})
    cache = make_cache()
    assert cache.get_or_load("item", loader, id=1) == {"v": 1}
    assert cache.get("item", id=1) == {"v": 1}
    assert loader.calls == 0
    assert cache.local_counters()["item"].fresh_hits == 2


def test_miss_loads_in_caller_and_writes_plain_json_with_policy_ttl(make_cache, redis_client, policy) -> None:
    cache = make_cache()
    caller = current_thread()
    seen: list[Any] = []

    def loader() -> dict[str, Any]:
        seen.append(current_thread())
        return {"id": 7, "name": "Lamp", "tags": ["é"]}

    assert cache.get_or_load("plain", loader, id=7) == {"id": 7, "name": "Lamp", "tags": ["é"]}
    assert seen == [caller]
    raw = redis_client.get("t:plain:7")
    assert raw == '{"id":7,"name":"Lamp","tags":["é"]}'.encode()
    low, high = ttl_bounds_ms(policy.namespace("plain"))
    assert low - 1000 <= redis_client.pttl("t:plain:7") <= high
    assert (cache.get_or_load("plain", loader, id=7))["id"] == 7
    assert len(seen) == 1


def test_stale_hit_returns_now_and_revalidates_in_background(make_cache, redis_client, policy) -> None:
    put(redis_client, "t:item:1", {"v": "old"}, STALE_PTTL)
    gate = Event()
    loader = Loader({"v": "new"}, gate=gate)
    cache = make_cache()
    # returns while the revalidation's loader is held: nobody waits for it
    assert cache.get_or_load("item", loader, id=1) == {"v": "old"}
    gate.set()
    assert until(lambda: redis_client.get("t:item:1") == b'{"v":"new"}')
    assert classify(redis_client.pttl("t:item:1"), policy.namespace("item")) is Freshness.FRESH
    assert until(lambda: not redis_client.exists("t:cachectl:lock:t:item:1"))
    c = cache.local_counters()["item"]
    assert (c.stale_hits, c.refreshes, c.loads, loader.calls) == (1, 1, 1, 1)


def test_fresh_stale_fail_safe_and_miss_in_one_cache(make_cache, redis_client, policy) -> None:
    put(redis_client, "t:item:1", "fresh", FRESH_PTTL)
    put(redis_client, "t:item:2", "stale", STALE_PTTL)
    put(redis_client, "t:item:3", "fail-safe", FAIL_SAFE_PTTL)
    loader = Loader("loaded")
    cache = make_cache()
    got = [cache.get_or_load("item", loader, id=i) for i in (1, 2, 3, 4)]
    assert until(lambda: redis_client.get("t:item:2") == b'"loaded"')
    assert got == ["fresh", "stale", "loaded", "loaded"]
    assert until(lambda: cache.local_counters()["item"].refreshes == 1)
    c = cache.local_counters()["item"]
    assert (c.fresh_hits, c.stale_hits, c.misses, c.refreshes, loader.calls) == (1, 1, 2, 1, 3)
    assert classify(redis_client.pttl("t:item:2"), policy.namespace("item")) is Freshness.FRESH
    assert redis_client.get("t:item:4") == b'"loaded"'


def test_fail_safe_band_reloads_in_caller_when_the_loader_works(make_cache, redis_client) -> None:
    put(redis_client, "t:item:1", {"v": "old"}, FAIL_SAFE_PTTL)
    cache = make_cache()
    assert cache.get_or_load("item", Loader({"v": "new"}), id=1) == {"v": "new"}
    assert redis_client.get("t:item:1") == b'{"v":"new"}'
    assert cache.local_counters()["item"].misses == 1


def test_fail_safe_served_on_loader_error_and_origin_throttled(make_cache, redis_client) -> None:
    put(redis_client, "t:item:1", {"v": "old"}, FAIL_SAFE_PTTL)
    failing = Loader(error=ConnectionError("origin down"))
    cache = make_cache(fail_safe_throttle_ms=2_000)
    assert cache.get_or_load("item", failing, id=1) == {"v": "old"}
    # re-armed: the fleet-wide lock is held for the throttle, the key's TTL is untouched
    assert 1_000 < redis_client.pttl("t:cachectl:lock:t:item:1") <= 2_000
    assert redis_client.pttl("t:item:1") <= FAIL_SAFE_PTTL
    for _ in range(5):
        assert cache.get_or_load("item", failing, id=1) == {"v": "old"}
    assert failing.calls == 1
    c = cache.local_counters()["item"]
    assert (c.fail_safe_hits, c.refresh_errors, c.misses) == (6, 1, 0)


def test_loader_error_without_fail_safe_value_propagates_unchanged(make_cache) -> None:
    error = KeyError("no such product")
    cache = make_cache()
    with pytest.raises(KeyError) as raised:
        cache.get_or_load("item", Loader(error=error), id=404)
    assert raised.value is error
    c = cache.local_counters()["item"]
    assert (c.misses, c.refresh_errors) == (1, 1)


def test_soft_timeout_serves_fail_safe_and_lets_the_load_finish(make_cache, redis_client) -> None:
    put(redis_client, "t:item:1", {"v": "old"}, FAIL_SAFE_PTTL)
    gate = Event()
    slow = Loader({"v": "new"}, gate=gate)
    cache = make_cache(soft_timeout_ms=50)
    assert cache.get_or_load("item", slow, id=1) == {"v": "old"}  # the loader is held
    gate.set()
    assert until(lambda: redis_client.get("t:item:1") == b'{"v":"new"}')
    assert until(lambda: cache.local_counters()["item"].refreshes == 1)
    assert until(lambda: not redis_client.exists("t:cachectl:lock:t:item:1"))


def test_key_without_expiry_is_served_and_rewritten_with_a_ttl(make_cache, redis_client) -> None:
    redis_client.set("t:item:9", b'{"v":"legacy"}')
    cache = make_cache()
    assert cache.get_or_load("item", Loader({"v": "new"}), id=9) == {"v": "legacy"}
    assert until(lambda: redis_client.pttl("t:item:9") > 0)


def test_unreadable_value_is_a_miss_and_is_overwritten(make_cache, redis_client) -> None:
    redis_client.set("t:item:3", b"\xff not json", px=FRESH_PTTL)
    cache = make_cache()
    assert cache.get_or_load("item", Loader({"v": 3}), id=3) == {"v": 3}
    assert redis_client.get("t:item:3") == b'{"v":3}'


COMPRESSED = POLICY.replace(
    '  plain:  {key: "plain:{id}", ttl: 10m,',
    '  plain:  {key: "plain:{id}", ttl: 10m, compress: {codec: zstd, min_bytes: 100B},',
)


def test_compressed_namespace_writes_frames_that_readers_with_compression_off_read(
    make_cache, redis_client, tmp_path, redis_url
) -> None:
    from cachectl import compression

    (tmp_path / "z").mkdir()
    writer = Cache.from_policy(
        load_policy(write_policy(tmp_path / "z", COMPRESSED)), redis_url, env={}, **QUIET
    )
    try:
        big = {"id": 5, "text": "soft cotton, true to size. " * 40}
        assert writer.get_or_load("plain", Loader(big), id=5) == big
        assert writer.get_or_load("plain", Loader({"id": 6}), id=6) == {"id": 6}
        stored = redis_client.get("t:plain:5")
        assert stored is not None and stored.startswith(compression.MAGIC)
        assert compression.inspect_frame(stored).codec == "zstd"
        assert len(stored) < len(json.dumps(big)) / 4
        assert redis_client.get("t:plain:6") == b'{"id":6}'  # under min_bytes: plain
        assert writer.get("plain", id=5) == big
        # a reader whose policy has compression off reads the writer's frame as a hit
        reader = make_cache()
        loader = Loader({"id": 5, "text": "reloaded"})
        assert reader.get_or_load("plain", loader, id=5) == big
        assert loader.calls == 0 and reader.local_counters()["plain"].fresh_hits == 1
    finally:
        writer.close()


def test_a_corrupt_frame_is_a_miss_counted_as_an_error_never_served(make_cache, redis_client) -> None:
    from cachectl import compression

    for key in ("t:item:5", "t:item:6"):
        redis_client.set(key, compression.MAGIC + b"\x02\x20not a zstd payload", px=FRESH_PTTL)
    cache = make_cache()
    assert cache.get_or_load("item", Loader({"v": 5}), id=5) == {"v": 5}
    assert redis_client.get("t:item:5") == b'{"v":5}'  # rewritten by the load
    assert cache.get("item", id=6) is None
    c = cache.local_counters()["item"]
    assert (c.misses, c.redis_errors, c.fresh_hits) == (2, 2, 0)


def test_a_key_of_another_type_is_a_miss_not_a_redis_error(make_cache, redis_client) -> None:
    redis_client.hset("t:item:4", "f", "v")
    cache = make_cache()
    assert cache.get_or_load("item", Loader({"v": 4}), id=4) == {"v": 4}
    assert redis_client.get("t:item:4") == b'{"v":4}'
    c = cache.local_counters()["item"]
    assert (c.misses, c.redis_errors) == (1, 0)


def test_values_written_are_plain_json_any_client_reads(make_cache, redis_client) -> None:
    cache = make_cache()
    value = {"id": 7, "price": 19.99, "tags": ["a", "b"], "name": "Lämpchen", "ok": True, "none": None}
    cache.set("plain", value, id=7)
    assert json.loads(redis_client.get("t:plain:7")) == value
    redis_client.set("t:plain:8", json.dumps([1, 2, 3]), px=60_000)  # written by anyone
    assert cache.get("plain", id=8) == [1, 2, 3]


# ------------------------------------------------------------------ stampedes


def test_100_callers_on_one_stale_key_load_it_exactly_once(make_cache, redis_client) -> None:
    put(redis_client, "t:item:1", {"v": "old"}, STALE_PTTL)
    loader = Loader({"v": "new"}, delay_s=0.05)
    cache = make_cache()
    barrier = Barrier(100)
    results: list[Any] = []

    def call() -> None:
        barrier.wait()
        for _ in range(5):
            results.append(cache.get_or_load("item", loader, id=1))

    join([spawn(call) for _ in range(100)])
    assert until(lambda: redis_client.get("t:item:1") == b'{"v":"new"}')
    assert until(lambda: cache.local_counters()["item"].refreshes == 1)
    c = cache.local_counters()["item"]
    assert loader.calls == 1, c
    assert c.redis_errors == 0  # 100 threads fit the pool (redis-py's default of 100 does not)
    assert len(results) == 500 and set(map(json.dumps, results)) <= {'{"v": "old"}', '{"v": "new"}'}
    assert cache.get_or_load("item", loader, id=1) == {"v": "new"}


def test_two_instances_on_one_stale_key_load_it_once(make_cache, redis_client) -> None:
    put(redis_client, "t:item:1", {"v": "old"}, STALE_PTTL)
    loader = Loader({"v": "new"}, delay_s=0.1)
    a, b = make_cache(), make_cache()
    barrier = Barrier(20)

    def call(cache: Cache) -> None:
        barrier.wait()
        cache.get_or_load("item", loader, id=1)

    join([spawn(call, a if i % 2 else b) for i in range(20)])
    assert until(lambda: redis_client.get("t:item:1") == b'{"v":"new"}')
    sleep(0.1)  # a second load would have started by now
    assert loader.calls == 1


def test_concurrent_misses_share_one_load(make_cache, redis_client) -> None:
    loader = Loader({"v": 1}, delay_s=0.2)
    cache = make_cache()
    results: list[Any] = []

    def call() -> None:
        results.append(cache.get_or_load("item", loader, id=5))

    join([spawn(call) for _ in range(30)])
    assert loader.calls == 1
    assert results == [{"v": 1}] * 30
    assert cache.local_counters()["item"].misses == 30


def test_waiters_give_up_after_the_hard_timeout(make_cache) -> None:
    loader = Loader({"v": 1}, delay_s=0.4)
    cache = make_cache(hard_timeout_ms=50)
    leader = spawn(cache.get_or_load, "item", loader, id=6)
    assert until(lambda: loader.calls == 1)
    with pytest.raises(LoadTimeoutError, match="another caller's load"):
        cache.get_or_load("item", loader, id=6)
    join([leader])
    assert loader.calls == 1


@pytest.mark.parametrize(
    "error",
    [RuntimeError("boom"), TimeoutError("the origin timed out")],
    ids=["RuntimeError", "TimeoutError"],
)
def test_waiters_share_the_leaders_error(make_cache, error: Exception) -> None:
    loader = Loader(error=error, delay_s=0.2)
    cache = make_cache()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            cache.get_or_load("item", loader, id=8)
        except type(error) as exc:
            errors.append(exc)

    join([spawn(call) for _ in range(10)])
    # the loader's own error (a TimeoutError too, not a LoadTimeoutError: nobody waited
    # longer than hard_timeout_ms)
    assert loader.calls == 1 and errors == [error] * 10


class AlwaysEarly(random.Random):
    """rand() = 1 - 1e-6: XFetch's -Δ·β·ln(1 - rand) is 13.8 Δ, so a key near expiry refreshes."""

    def random(self) -> float:
        return 1 - 1e-6


def test_early_refresh_reloads_a_fresh_key_before_it_goes_stale(make_cache, redis_client) -> None:
    cache = make_cache(rng=AlwaysEarly())
    # teach the cache that loads take ~100 ms (XFetch's Δ)
    cache.get_or_load("early", Loader({"v": 0}, delay_s=0.1), id=0)
    put(redis_client, "t:early:1", {"v": "old"}, 1_000 + 1_000)  # fresh 1 s more < 13.8 Δ
    loader = Loader({"v": "new"})
    assert cache.get_or_load("early", loader, id=1) == {"v": "old"}
    assert until(lambda: redis_client.get("t:early:1") == b'{"v":"new"}')
    assert until(lambda: cache.local_counters()["early"].early_refreshes == 1)
    c = cache.local_counters()["early"]
    assert c.fresh_hits == 1 and c.stale_hits == 0


# ------------------------------------------------------------------ values no serializer stores

UNSTORABLE = [
    datetime(2026, 1, 2, tzinfo=UTC),
    Decimal("1.10"),
    {1, 2},
    b"\x00raw",
    float("nan"),
    float("inf"),
    {"price": float("-inf")},
]


@pytest.mark.parametrize("value", UNSTORABLE, ids=repr)
def test_a_loaded_value_the_serializer_refuses_is_returned_not_stored(
    make_cache, redis_client, value: Any
) -> None:
    cache = make_cache()
    got = cache.get_or_load("item", Loader(value), id=21)
    assert got is value  # the caller gets what the loader returned
    assert not redis_client.exists("t:item:21")
    c = cache.local_counters()["item"]
    assert (c.misses, c.refresh_errors, c.redis_errors) == (1, 1, 0)
    with pytest.raises((TypeError, ValueError)):
        cache.set("item", value, id=21)  # asked to store it: say so


def test_an_unstorable_value_in_the_fail_safe_band_serves_the_fail_safe_value(
    make_cache,
    redis_client,
    reliability: Recorder,
) -> None:
    put(redis_client, "t:item:22", {"v": "old"}, FAIL_SAFE_PTTL)
    loader = Loader(Decimal("9.99"))
    cache = make_cache()
    assert cache.get_or_load("item", loader, id=22) == Decimal("9.99")
    assert redis_client.get("t:item:22") == b'{"v":"old"}'  # not overwritten
    assert not redis_client.exists("t:cachectl:lock:t:item:22")  # released at once
    put(redis_client, "t:item:23", {"v": "old"}, FAIL_SAFE_PTTL)
    gate = Event()
    late = Loader(float("nan"), gate=gate)
    soft = make_cache(soft_timeout_ms=20)
    assert soft.get_or_load("item", late, id=23) == {"v": "old"}  # the fail-safe value
    gate.set()
    assert until(lambda: soft.local_counters()["item"].refresh_errors == 1)
    assert redis_client.get("t:item:23") == b'{"v":"old"}'
    assert until(lambda: not redis_client.exists("t:cachectl:lock:t:item:23"))
    reliability.add(
        "library-unstorable-fail-safe",
        area="one server",
        fault="Cache: a key in the fail-safe band whose loader returns a "
        "Decimal, or NaN after the soft timeout",
        command="Cache.get_or_load",
        did="returned the loaded value (or served the fail-safe value); "
        "stored nothing; counted a refresh error",
        verified="the stored value is unchanged; the revalidation lock was released at once; no NaN written",
    )


def test_an_unstorable_value_in_a_background_refresh_releases_the_lock(make_cache, redis_client) -> None:
    put(redis_client, "t:item:24", {"v": "old"}, STALE_PTTL)
    loader = Loader({"at": datetime(2026, 1, 2, tzinfo=UTC)})
    cache = make_cache()
    assert cache.get_or_load("item", loader, id=24) == {"v": "old"}
    assert until(lambda: cache.local_counters()["item"].refresh_errors == 1)
    assert until(lambda: not redis_client.exists("t:cachectl:lock:t:item:24"))
    c = cache.local_counters()["item"]
    assert (c.stale_hits, c.refreshes, loader.calls) == (1, 0, 1)
    assert redis_client.get("t:item:24") == b'{"v":"old"}'


# ------------------------------------------------------------------ API and errors


def test_unknown_namespace_and_missing_placeholder_raise_at_once(make_cache) -> None:
    cache = make_cache()
    loader = Loader(1)
    with pytest.raises(UsageError, match="no namespace 'itme'") as raised:
        cache.get_or_load("itme", loader, id=1)
    assert raised.value.hint == "did you mean 'item'?"
    with pytest.raises(KeyParamError, match="needs id"):
        cache.get_or_load("item", loader, sku=1)
    with pytest.raises(KeyParamError, match="cannot be one key segment"):
        cache.get("item", id="a:b")
    assert loader.calls == 0
    with pytest.raises(UsageError, match="unknown cache option 'timeout'"):
        Cache.from_policy(cache.policy, timeout=3)


def test_cached_decorator_fills_placeholders_by_name(make_cache, redis_client) -> None:
    cache = make_cache()
    calls: list[tuple[Any, ...]] = []

    @cache.cached("search")
    def search(query: str, page: int = 1, *, debug: bool = False) -> list[str]:
        calls.append((query, page))
        return [f"{query}-{page}"]

    assert search("red shoes") == ["red shoes-1"]
    assert search(query="red shoes", page=1) == ["red shoes-1"]
    assert search("red shoes", 2) == ["red shoes-2"]
    assert calls == [("red shoes", 1), ("red shoes", 2)]
    assert len(redis_client.keys("t:search:*")) == 2
    assert search.invalidate("red shoes", 2) is True  # type: ignore[attr-defined]
    assert len(redis_client.keys("t:search:*")) == 1
    with pytest.raises(KeyParamError, match="has no parameter id"):

        @cache.cached("item")
        def wrong(sku: str) -> None: ...

    with pytest.raises(UsageError):
        cache.cached("nope")


def test_set_invalidate_and_soft_invalidate(make_cache, redis_client, policy) -> None:
    cache = make_cache()
    assert cache.set("item", {"v": 1}, id=1) is True
    assert cache.get("item", id=1) == {"v": 1}
    assert cache.soft_invalidate("item", id=1) is True
    ns = policy.namespace("item")
    assert classify(redis_client.pttl("t:item:1"), ns) is Freshness.STALE
    loader = Loader({"v": 2})
    assert cache.get_or_load("item", loader, id=1) == {"v": 1}  # served once more, stale
    assert until(lambda: redis_client.get("t:item:1") == b'{"v":2}')
    assert cache.invalidate("item", id=1) is True
    assert not redis_client.exists("t:item:1")
    assert cache.get("item", id=1) is None
    with pytest.raises(ValueTooLargeError, match="max_value_bytes"):
        cache.set("item", "x" * 2000, id=2)


def test_soft_invalidate_never_lengthens_a_ttl(make_cache, redis_client) -> None:
    put(redis_client, "t:item:1", 1, FAIL_SAFE_PTTL)
    cache = make_cache()
    cache.soft_invalidate("item", id=1)
    assert redis_client.pttl("t:item:1") <= FAIL_SAFE_PTTL
    cache.set("plain", 1, id=1)
    with pytest.raises(UsageError, match="no stale window"):
        cache.soft_invalidate("plain", id=1)  # nothing to serve stale: say so, change nothing
    assert redis_client.pttl("t:plain:1") > 60_000


def test_invalidate_tag_removes_every_tagged_namespace(make_cache, redis_client) -> None:
    cache = make_cache()
    for i in range(5):
        cache.set("item", i, id=i)
        cache.set("plain", i, id=i)
        cache.set("other", i, id=i)
    redis_client.set("t:item:shelf:1", b"1")  # matches the glob t:item:*, not item's key
    assert cache.invalidate_tag("cat") == 10
    assert redis_client.keys("t:item:*") == [b"t:item:shelf:1"] and redis_client.keys("t:plain:*") == []
    assert len(redis_client.keys("t:other:*")) == 5
    with pytest.raises(UsageError, match="no namespace carries tag"):
        cache.invalidate_tag("nope")


def test_from_policy_reads_the_file_and_the_url(tmp_path: Path, redis_url: str, redis_client) -> None:
    path = write_policy(
        tmp_path, POLICY.replace("redis: {key_prefix: t}", "redis: {key_prefix: t, url: '${CACHE_URL}'}")
    )
    with Cache.from_policy(path, env={"CACHE_URL": redis_url}, **PATIENT) as cache:
        cache.set("plain", "hello", id=1)
    assert redis_client.get("t:plain:1") == b'"hello"'


# ------------------------------------------------------------------ counters, background work


def test_counters_read_back_equal_the_calls_made(make_cache, redis_client) -> None:
    put(redis_client, "t:item:1", "fresh", FRESH_PTTL)
    put(redis_client, "t:item:2", "stale", STALE_PTTL)
    put(redis_client, "t:item:3", "fail-safe", FAIL_SAFE_PTTL)
    cache = make_cache(fail_safe_throttle_ms=60_000)
    ok, bad = Loader("loaded", delay_s=0.002), Loader(error=ValueError("x"))
    for _ in range(7):
        cache.get_or_load("item", ok, id=1)
    cache.get_or_load("item", ok, id=2)
    for _ in range(3):
        cache.get_or_load("item", bad, id=3)
    for i in range(10, 14):
        cache.get_or_load("item", ok, id=i)
    with pytest.raises(ValueError):
        cache.get_or_load("item", bad, id=99)
    assert until(lambda: cache.local_counters()["item"].refreshes == 1)
    cache.close()
    got = counters(redis_client, "item")
    assert got["fresh_hits"] == 7
    assert got["stale_hits"] == 1
    assert got["fail_safe_hits"] == 3
    assert got["misses"] == 5
    assert got["refreshes"] == 1
    assert got["refresh_errors"] == 2  # the fail-safe reload once (then throttled), the miss once
    assert got["loads"] == 5 and got["load_us"] >= 5 * 2000
    assert got["redis_errors"] == 0
    assert redis_client.ttl(f"t:cachectl:counters:v1:{int(time.time() // 60)}") > 2 * 24 * 3600


def test_counters_are_written_in_the_background_every_interval(make_cache, redis_client) -> None:
    cache = make_cache(counters_interval_s=0.05)
    cache.set("plain", 1, id=1)
    cache.get("plain", id=1)
    assert until(lambda: counters(redis_client, "plain").get("fresh_hits") == 1)


def test_counters_off_writes_nothing(make_cache, redis_client) -> None:
    cache = make_cache(counters=False)
    cache.set("plain", 1, id=1)
    cache.get("plain", id=1)
    cache.close()
    assert redis_client.keys("t:cachectl:counters:*") == []


def test_no_background_work_left_after_close(policy: Policy, redis_url: str, redis_client) -> None:
    before = running_threads()
    cache = Cache.from_policy(policy, redis_url, env={}, l1_max_items=100, **QUIET)
    put(redis_client, "t:item:1", 1, STALE_PTTL)
    cache.get_or_load("item", Loader(2, delay_s=0.05), id=1)
    cache.get_or_load("item", Loader(2), id=2)
    assert len(running_threads() - before) >= 2  # the counter writer, the L1 subscriber, ...
    cache.close()
    cache.close()  # idempotent
    assert running_threads() - before == set()
    assert redis_client.get("t:item:1") == b"2"  # the background refresh finished first


EXIT_SCRIPT = """
import sys
from cachectl import Cache
from cachectl.policy import load_policy

policy = load_policy(sys.argv[1], {})
cache = Cache.from_policy(policy, sys.argv[2], env={}, counters_interval_s=3600,
                      timeout_ms=2000, connect_timeout_ms=2000)
cache.set("plain", 1, id=1)
cache.get("plain", id=1)
cache.get("plain", id=2)
cache.get("other", id=1)
print("exiting without close()")
"""


def test_counters_are_written_at_interpreter_exit(tmp_path: Path, redis_url: str, redis_client) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(write_policy(tmp_path)), redis_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "exiting without close()" in out.stdout
    plain = counters(redis_client, "plain")
    assert (plain["fresh_hits"], plain["misses"]) == (1, 1)
    assert counters(redis_client, "other")["misses"] == 1


class UpperSerializer:
    """A pluggable serializer: plain text, upper-cased on the way in."""

    def dumps(self, value: Any) -> bytes:
        return str(value).upper().encode()

    def loads(self, data: bytes) -> Any:
        return data.decode()


def test_a_serializer_can_be_plugged_in(make_cache, redis_client) -> None:
    cache = make_cache(serializer=UpperSerializer())
    assert cache.get_or_load("plain", lambda: "lamp", id=1) == "lamp"  # the loader's value
    assert redis_client.get("t:plain:1") == b"LAMP"
    assert cache.get("plain", id=1) == "LAMP"


# ------------------------------------------------------------------ the access trace

TRACED = POLICY + "trace: {sample: SAMPLE, max_events: 1000}\n"


def trace_events(client: Any) -> list[dict[str, str]]:
    """Every event in the trace streams of prefix t, decoded."""
    from cachectl.cache.trace import stream_keys

    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for stream in stream_keys("t:cachectl")
        for _, fields in client.xrange(stream)
    ]


def test_a_traced_cache_records_every_outcome_without_keys_or_values(
    tmp_path: Path, redis_url: str, redis_client
) -> None:
    from cachectl.model.trace import key_hash

    policy = load_policy(write_policy(tmp_path, TRACED.replace("SAMPLE", "100%")))
    put(redis_client, "t:item:1", "fresh", FRESH_PTTL)
    put(redis_client, "t:item:2", "stale", STALE_PTTL)
    put(redis_client, "t:item:3", "fail-safe", FAIL_SAFE_PTTL)
    failing = Loader(error=RuntimeError("origin down"))
    with Cache.from_policy(policy, redis_url, env={}, **QUIET) as cache:
        got = [cache.get_or_load("item", failing, id=i) for i in (1, 2, 3)]
        assert got == ["fresh", "stale", "fail-safe"]
        assert cache.get_or_load("item", Loader("loaded"), id=4) == "loaded"
        assert cache.get("item", id=4) == "loaded"
        assert until(lambda: len(trace_events(redis_client)) == 5)
    events = sorted(trace_events(redis_client), key=lambda e: float(e["t"]))
    assert [e["o"] for e in events] == ["fresh", "stale", "fail-safe", "miss", "fresh"]
    assert [int(e["h"]) for e in events] == [key_hash(f"t:item:{i}".encode()) for i in (1, 2, 3, 4, 4)]
    assert [int(e["s"]) for e in events] == [7, 7, 11, 8, 8]  # bytes stored: '"fresh"' …
    assert {e["ns"] for e in events} == {"item"} and {e["r"] for e in events} == {"1.0"}
    assert "l" in events[2] and "l" in events[3] and "l" not in events[0]  # load time: origin asked
    assert not any("t:item" in v or "loaded" in v for e in events for v in e.values())
    assert cache.trace_dropped == 0


def test_a_sampled_trace_holds_every_access_of_exactly_the_sampled_keys(
    tmp_path: Path, redis_url: str, redis_client
) -> None:
    from cachectl.model import keeps_key, key_hash

    policy = load_policy(write_policy(tmp_path, TRACED.replace("SAMPLE", "10%")))
    keep = keeps_key(0.10)
    sampled = {i for i in range(400) if keep(key_hash(f"t:plain:{i}".encode()))}
    assert 15 < len(sampled) < 70  # ~10 % of 400
    with Cache.from_policy(policy, redis_url, env={}, **QUIET) as cache:
        for _ in range(2):
            for i in range(400):
                cache.get_or_load("plain", lambda: "v", id=i)
    events = trace_events(redis_client)
    assert len(events) == 2 * len(sampled)
    assert {int(e["h"]) for e in events} == {key_hash(f"t:plain:{i}".encode()) for i in sampled}
    assert sorted(e["o"] for e in events) == ["fresh"] * len(sampled) + ["miss"] * len(sampled)
    assert {e["r"] for e in events} == {"0.1"}


def test_trace_events_are_dropped_and_counted_while_redis_is_down(
    tmp_path: Path, redis_factory, capsys
) -> None:
    from cachectl.cache import trace as trace_module
    from cachectl.cli import main

    server = redis_factory()
    path = write_policy(tmp_path, TRACED.replace("SAMPLE", "100%"))
    # no background write: the test writes when Redis is down
    cache = Cache.from_policy(load_policy(path), server.url, env={}, **{**QUIET, "counters_interval_s": 3600})
    try:
        for i in range(5):
            cache.get_or_load("plain", lambda: "v", id=i)
        tracer = cache._tracer
        assert tracer is not None and tracer.pending
        server.stop()
        assert cache.flush_counters() is False
        # the 5 events are dropped with the failed write (the counters are kept for later)
        assert (cache.trace_dropped, tracer.pending) == (5, False)
        old = trace_module.MAX_BUFFERED
        trace_module.MAX_BUFFERED = 3
        try:
            for _ in range(5):
                tracer.record("plain", 1, 1, "fresh")
        finally:
            trace_module.MAX_BUFFERED = old
        assert len(tracer.drain()) == 3  # bounded: the rest were dropped and counted
        assert cache.trace_dropped == 7
        # Redis is back (empty): the next write carries the drop count with the kept counters
        server.start()
        for _ in range(100):
            if cache.flush_counters():
                break
            sleep(0.05)
        client = server.client()
        assert counters(client, "plain")["trace_dropped"] == 7  # the minute's bucket
        assert counters(client, "plain")["misses"] == 5  # kept through the outage
        assert client.hget("t:cachectl:counters:v1:total", "plain|trace_dropped") == b"7"
    finally:
        cache.close()
    code = main(["stats", "--url", server.url, "-p", str(path), "--interval", "100ms", "--no-scan", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    by_name = {ns["namespace"]: ns for ns in json.loads(out)["namespaces"]}
    assert by_name["plain"]["trace_dropped"] == 7
    assert by_name["plain"]["counter_totals"]["trace_dropped"] == 7
    assert by_name["item"]["trace_dropped"] == 0 and by_name["plain"]["model_hint"] is None
    code = main(["stats", "--url", server.url, "-p", str(path), "--interval", "100ms", "--no-scan"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert (
        "Trace events the library dropped in the last 15m (buffer full or Redis unavailable): "
        "plain 7; the captured trace under-represents the load" in " ".join(out.split())
    )


def test_the_model_of_a_captured_trace_says_how_many_events_the_library_dropped(
    tmp_path: Path, redis_url: str, redis_client, capsys, monkeypatch
) -> None:
    from cachectl.cache import trace as trace_module
    from cachectl.cli import main

    path = write_policy(tmp_path, TRACED.replace("SAMPLE", "100%"))
    monkeypatch.setattr(trace_module, "MAX_BUFFERED", 4)
    # one write at the end: 4 of the 10 reads' events fit in the buffer, 6 are dropped
    cache = Cache.from_policy(load_policy(path), redis_url, env={}, **{**QUIET, "counters_interval_s": 3600})
    try:
        for i in range(10):
            cache.get_or_load("plain", lambda: "v", id=i)
        assert cache.trace_dropped == 6
        assert cache.flush_counters() is True
    finally:
        cache.close()
    assert len(trace_events(redis_client)) == 4
    assert counters(redis_client, "plain")["trace_dropped"] == 6
    code = main(["model", "--url", redis_url, "-p", str(path), "--ttl", "10m", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    doc = json.loads(out)
    assert doc["trace_dropped"] == 6
    assert [(m["namespace"], m["trace_dropped"]) for m in doc["namespaces"]] == [("plain", 6)]
    code = main(["model", "--url", redis_url, "-p", str(path), "--ttl", "10m"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    text = " ".join(out.split())
    assert (
        "captured trace: the library dropped 6 trace events since its first one (plain 6) "
        "(buffer full or Redis unavailable): the trace under-represents the load"
    ) in text
    # a trace file says nothing of drops
    trace = tmp_path / "t.csv"
    trace.write_text("time,key,size\n" + "".join(f"{i},t:plain:{i % 3},10\n" for i in range(20)))
    code = main(["model", "--trace", str(trace), "-p", str(path), "--ttl", "10m", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    doc = json.loads(out)
    assert doc["trace_dropped"] is None and doc["namespaces"][0]["trace_dropped"] is None


@pytest.mark.parametrize("sample", [1.0, 0.1])
def test_the_model_of_the_captured_trace_counts_what_the_cache_counted(
    tmp_path: Path, redis_url: str, redis_client, capsys, sample: float
) -> None:
    from cachectl.cli import main
    from cachectl.model import keeps_key, key_hash

    path = write_policy(
        tmp_path, TRACED.replace("SAMPLE", f"{sample:.0%}").replace("max_events: 1000", "max_events: 100000")
    )
    rng = random.Random(11)
    ids = [rng.randrange(1500) for _ in range(5000)]
    with Cache.from_policy(load_policy(path), redis_url, env={}, **QUIET) as cache:
        for i in ids:
            cache.get_or_load("plain", lambda: "value", id=i)
    counted = cache.local_counters()["plain"]
    total = counted.fresh_hits + counted.stale_hits + counted.fail_safe_hits + counted.misses
    assert total == len(ids)
    code = main(["model", "--url", redis_url, "-p", str(path), "--ttl", "10m", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    doc = json.loads(out)
    (model,) = doc["namespaces"]
    (point,) = model["ttl_curve"]
    assert doc["trace_dropped"] == model["trace_dropped"] == 0  # every event was kept
    keep = keeps_key(sample)
    in_sample = [i for i in ids if keep(key_hash(f"t:plain:{i}".encode()))]
    assert model["sample_rate"] == pytest.approx(sample)
    assert model["requests"] == round(len(in_sample) / sample)
    hit_rate = (counted.fresh_hits + counted.stale_hits) / total
    if sample == 1:  # every access: the same counts, the same hit rate
        assert model["requests"] == total
        assert point["hit_rate"] == pytest.approx(hit_rate, abs=1e-12)
    else:  # SHARDS' estimate from ~10 % of the keys
        assert abs(model["requests"] - total) < 0.3 * total
        assert point["hit_rate"] == pytest.approx(hit_rate, abs=0.05)
