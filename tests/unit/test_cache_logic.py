"""Pure logic of the cache library: state decisions, XFetch, breaker, local stores, counters."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from cachectl.cache.aggregator import MAX_PENDING_MINUTES, CounterAggregator
from cachectl.cache.base import switch_target
from cachectl.cache.breaker import BreakerState, CircuitBreaker
from cachectl.cache.core import (
    Action,
    CacheOptions,
    JsonSerializer,
    build_options,
    decide,
    invalidation_message,
    l1_expiry_ms,
    parse_invalidation,
    placeholder_binder,
)
from cachectl.cache.local import MISSING, LocalStore
from cachectl.errors import UsageError
from cachectl.freshness import Freshness
from cachectl.policy import KeyParamError, Policy, parse_policy

POLICY = """\
version: 1
redis: {key_prefix: shop}
namespaces:
  product: {key: "product:{id}", ttl: 1h, stale: 10m, stale_if_error: 6h, jitter: 0%}
  price:   {key: "price:{sku}", ttl: 5m, early_refresh: 2}
  search:  {key: "search:{query:hash}:{page}", ttl: 1m}
"""
H, M = 3_600_000, 60_000
SER = JsonSerializer()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def policy() -> Policy:
    result = parse_policy(POLICY, "p.yaml", {})
    assert result.policy is not None
    return result.policy


@pytest.mark.parametrize(("pttl", "action", "state"), [
    (6 * H + 1, Action.SERVE, Freshness.FRESH),
    (6 * H, Action.SERVE_REFRESH, Freshness.STALE),           # G: the top of the stale band
    (6 * H - 10 * M + 1, Action.SERVE_REFRESH, Freshness.STALE),
    (6 * H - 10 * M, Action.LOAD_FAIL_SAFE, Freshness.FAIL_SAFE),
    (1, Action.LOAD_FAIL_SAFE, Freshness.FAIL_SAFE),
    (-1, Action.SERVE_REFRESH, Freshness.NO_TTL),             # no expiry: serve, rewrite with a TTL
])
def test_decide_follows_the_freshness_rule(policy: Policy, pttl: int, action: Action,
                                           state: Freshness) -> None:
    d = decide(policy.namespace("product"), b'{"id":1}', pttl, SER, None, random.Random(1))
    assert (d.action, d.state, d.value) == (action, state, {"id": 1})


def test_missing_and_unreadable_values_are_loads(policy: Policy) -> None:
    ns = policy.namespace("product")
    assert decide(ns, None, -2, SER, None, random.Random()).action is Action.LOAD
    d = decide(ns, b"{not json", 7 * H, SER, None, random.Random())
    assert (d.action, d.state) == (Action.LOAD, Freshness.GONE)


def test_xfetch_refreshes_early_with_the_expected_probability(policy: Policy) -> None:
    ns = policy.namespace("price")  # beta 2, no grace: fresh while PTTL > 0
    rng = random.Random(42)
    remaining, mean = 300, 100.0
    n = 20_000
    early = sum(decide(ns, b"1", remaining, SER, mean, rng).early for _ in range(n))
    # P(-Δ·β·ln U >= r) = exp(-r / (Δ·β))
    expected = math.exp(-remaining / (mean * 2))
    assert abs(early / n - expected) < 0.02
    assert not decide(ns, b"1", remaining, SER, None, rng).early  # no loads measured yet
    assert not decide(policy.namespace("product"), b"1", 7 * H, SER, mean, rng).early  # off


def test_breaker_opens_after_n_failures_and_probes_once(policy: Policy) -> None:
    clock = FakeClock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(3, 1.0, clock)
    breaker.on_change = changes.append
    breaker.failure()
    breaker.failure()
    breaker.success()  # a success resets the count
    breaker.failure()
    breaker.failure()
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()          # the probe
    assert not breaker.allow()      # only one
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.failure()               # probe failed: open for another period
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    assert changes == [BreakerState.OPEN, BreakerState.CLOSED]


def test_local_store_expires_and_evicts_least_recently_used() -> None:
    clock = FakeClock()
    store = LocalStore(2, clock)
    store.put("a", 1, 1000, "ns1")
    store.put("b", 2, 1000, "ns2")
    assert store.get("a") == 1  # a is now the most recent
    store.put("c", 3, 1000, "ns2")
    assert store.get("b") is MISSING and len(store) == 2
    clock.now += 1.0
    assert store.get("a") is MISSING
    store.put("d", 4, 5000, "ns2")
    store.discard_namespaces(["ns2"])
    assert len(store) == 0
    LocalStore(0, clock).put("x", 1, 1000)  # size 0: off


def test_l1_entries_never_outlive_the_fresh_time(policy: Policy) -> None:
    ns, opts = policy.namespace("product"), CacheOptions(l1_ttl_ms=5000)
    assert l1_expiry_ms(ns, 6 * H + 2000, opts) == 2000
    assert l1_expiry_ms(ns, 7 * H, opts) == 5000


def test_aggregator_drains_per_minute_and_restores_failed_writes() -> None:
    now = [120.0]
    agg = CounterAggregator(wall_clock=lambda: now[0])
    agg.add("product", "fresh_hits")
    agg.add("product", "fresh_hits")
    now[0] = 185.0
    agg.add_load("product", 1500)
    deltas = agg.drain()
    assert deltas == {2: {("product", "fresh_hits"): 2},
                      3: {("product", "loads"): 1, ("product", "load_us"): 1500}}
    assert agg.drain() == {}
    agg.restore(deltas)
    agg.add("product", "fresh_hits")
    assert agg.drain()[3][("product", "fresh_hits")] == 1
    assert agg.mean_load_ms("product") == 1.5
    assert agg.totals()["product"].fresh_hits == 3


def test_aggregator_keeps_a_bounded_backlog() -> None:
    agg = CounterAggregator()
    agg.restore({m: {("p", "misses"): 1} for m in range(MAX_PENDING_MINUTES + 30)})
    assert len(agg.drain()) == MAX_PENDING_MINUTES


def test_aggregator_totals_count_every_call_once_whatever_the_writes_did() -> None:
    now = [0.0]
    agg = CounterAggregator(wall_clock=lambda: now[0])
    for minute in range(MAX_PENDING_MINUTES + 5):
        now[0] = minute * 60.0
        agg.add("p", "misses")
    assert agg.totals()["p"].misses == MAX_PENDING_MINUTES + 5  # pending only
    failed = agg.drain()
    agg.restore(failed)  # the oldest 5 minutes fall off the backlog, still counted
    assert agg.totals()["p"].misses == MAX_PENDING_MINUTES + 5
    agg.add("p", "misses")
    timed_out = agg.drain()
    agg.discard(timed_out)
    assert agg.totals()["p"].misses == MAX_PENDING_MINUTES + 6
    assert agg.dropped == MAX_PENDING_MINUTES + 1  # the restored backlog and the new call
    assert agg.drain() == {}


def test_disabled_aggregator_counts_nothing_but_load_times() -> None:
    agg = CounterAggregator(enabled=False)
    agg.add("p", "misses")
    agg.add_load("p", 2000)
    assert agg.drain() == {} and agg.mean_load_ms("p") == 2.0


def test_placeholder_binder_maps_arguments_by_name(policy: Policy) -> None:
    def search(query: str, page: int = 1, *, lang: str = "en") -> Any: ...

    bind = placeholder_binder(search, policy.namespace("search"))
    assert bind("lamp") == {"query": "lamp", "page": 1}
    assert bind(page=3, query="x", lang="de") == {"query": "x", "page": 3}

    def by_kwargs(**kw: Any) -> Any: ...

    assert placeholder_binder(by_kwargs, policy.namespace("search"))(query="q", page=2) == {
        "query": "q", "page": 2}

    def wrong(sku: str) -> Any: ...

    with pytest.raises(KeyParamError, match="has no parameter id"):
        placeholder_binder(wrong, policy.namespace("product"))


def test_unknown_option_names_a_close_one() -> None:
    with pytest.raises(UsageError, match="unknown cache option 'soft_timeout'") as raised:
        build_options(None, {"soft_timeout": 5})
    assert raised.value.hint == "did you mean 'soft_timeout_ms'?"
    with pytest.raises(UsageError, match="read_mode"):
        build_options(None, {"read_mode": "magic"})


def test_json_serializer_is_compact_and_plain() -> None:
    assert SER.dumps({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'.encode()
    assert SER.loads(b'{"a":1}') == {"a": 1}


def test_invalidation_messages_round_trip() -> None:
    msg = invalidation_message("me", ["k1"], ["ns"])
    assert parse_invalidation(msg) == ("me", ["k1"], ["ns"])
    assert parse_invalidation(b"garbage") is None


def test_switch_target_reads_only_this_masters_switch() -> None:
    def message(data: object) -> dict[str, object]:
        return {"type": "message", "channel": b"+switch-master", "data": data}

    assert switch_target(message(b"shop 10.0.0.1 6379 10.0.0.2 6380"), "shop") == ("10.0.0.2", 6380)
    assert switch_target(message("shop 10.0.0.1 6379 10.0.0.2 6380"), "shop") == ("10.0.0.2", 6380)
    assert switch_target(message(b"other 10.0.0.1 6379 10.0.0.2 6380"), "shop") is None
    assert switch_target(message(b"shopping 10.0.0.1 6379 10.0.0.2 6380"), "shop") is None
    assert switch_target(message(b"shop 10.0.0.1 6379"), "shop") is None
    assert switch_target(message(b"shop a b c port"), "shop") is None
    assert switch_target({"type": "subscribe", "data": 1}, "shop") is None
    assert switch_target(None, "shop") is None
