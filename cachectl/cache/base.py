"""``CacheBase``: the part of ``Cache`` and ``AsyncCache`` that never waits on Redis.

The state both keep (keys, serializer, counters, breaker, fallback store, L1), what they
do with a read once it is back, and the checks made before a call reaches Redis. The
subclasses hold the I/O: sync.py with threads, aio.py with one event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis.exceptions as rex

from cachectl.cache.aggregator import CounterAggregator
from cachectl.cache.breaker import CircuitBreaker
from cachectl.cache.core import (
    Action,
    CacheOptions,
    Decision,
    KeyBuilder,
    check_migrations,
    check_size,
    decide,
    new_token,
    parse_invalidation,
    too_large,
)
from cachectl.cache.local import MISSING, LocalStore
from cachectl.cache.trace import Tracer
from cachectl.compression import value_encoder
from cachectl.connection import ConnectionSettings
from cachectl.counter_format import NamespaceCounters
from cachectl.errors import UsageError
from cachectl.freshness import soft_expire_pttl_ms
from cachectl.policy.model import Namespace, Policy

# RedisClusterException (e.g. SlotNotCoveredError mid-failover) is not a RedisError;
# OSError covers TimeoutError, which asyncio's timeouts raise too
REDIS_ERRORS = (rex.RedisError, rex.RedisClusterException, OSError)
UNLINK_BATCH = 500  # keys per UNLINK of invalidate_tag
RECENT_LOADS = 1024  # finished loads remembered for callers that raced them
Loader = Callable[[], Any]  # returns the value (AsyncCache: or an awaitable of it)


class Throttled(Exception):
    """The flight ended without a value: serve the fail-safe value (internal)."""


class LeaderGone(Exception):
    """The caller loading a key was cancelled (a request timeout, a client that went away)
    or interrupted: a caller waiting for it takes the load over (internal)."""


def lib_settings(settings: ConnectionSettings, options: CacheOptions) -> ConnectionSettings:
    """Connection settings for the library: short per-call timeouts and no retries."""
    return replace(settings, timeout_s=options.timeout_ms / 1000.0,
                   connect_timeout_s=options.connect_timeout_ms / 1000.0, retries=0,
                   client_name="cachectl-lib")


# Sentinel publishes this (on every Sentinel) when it promotes a replica:
# "<master name> <old ip> <old port> <new ip> <new port>"
SWITCH_MASTER = "+switch-master"
# following them: the pause after a Sentinel fails, doubled while they keep failing
FOLLOW_RETRY_S, FOLLOW_RETRY_MAX_S = 0.2, 5.0
# the Sentinel that announced a switch can be ahead of the one asked: ask this long
FOLLOW_AGREE_S = 5.0


def sentinel_pool(client: Any) -> Any:
    """The client's connection pool when Sentinel manages it (redis-py's
    SentinelConnectionPool, sync or async), else None."""
    pool = getattr(client, "connection_pool", None)  # a cluster client has none
    return pool if getattr(pool, "sentinel_manager", None) is not None else None


def switch_target(message: Any, service_name: str) -> tuple[str, int] | None:
    """The new primary's (ip, port) when ``message`` is a ``+switch-master`` moving the
    master named ``service_name``, else None."""
    if not isinstance(message, dict) or message.get("type") != "message":
        return None
    data = message.get("data")
    parts = (data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)).split()
    if len(parts) != 5 or parts[0] != service_name or not parts[4].isdigit():
        return None
    return parts[3], int(parts[4])


def _framer(ns: Namespace) -> Callable[[bytes], bytes]:
    # any_bytes: a custom serializer may write bytes that begin with the magic
    encoder = value_encoder(ns.compress, any_bytes=True)
    assert encoder is not None
    return encoder


class CacheBase(ABC):
    """Shared state and decisions; see ``Cache`` (sync.py) and ``AsyncCache`` (aio.py)."""

    def __init__(self, policy: Policy, client: Any, options: CacheOptions | None,
                 owns_client: bool) -> None:
        self.policy = policy
        self.client = client
        self.options = opts = options or CacheOptions()
        self._owns_client = owns_client
        self._keys = KeyBuilder(policy)
        check_migrations(policy, opts.migrate)
        self._migrations = dict(opts.migrate)
        self._ser = opts.serializer
        self._rng = opts.rng
        self._counters = CounterAggregator(opts.counters)
        self._count = self._counters.add
        self._breaker = CircuitBreaker(opts.breaker_failures, opts.breaker_reset_ms / 1000.0,
                                       opts.clock)
        self._fallback = LocalStore(opts.fallback_max_items, opts.clock)
        self._l1 = LocalStore(opts.l1_max_items, opts.clock) if opts.l1_max_items > 0 else None
        self._l1_generation = 0  # bumped by every invalidation: a read older than it is not cached
        self._origin = new_token()  # our own invalidation messages are ignored when they return
        self._read_sha: str | None = None
        self._release_sha: str | None = None
        self._soften_sha: str | None = None
        # key -> (monotonic time, value) of loads that just finished: a caller whose read
        # began before one finished uses it instead of loading again
        self._recent: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._refreshing: set[str] = set()
        self._failovers_followed = 0
        # per namespace: serialised value -> stored bytes (CodecUnavailableError here, at
        # construction, when a codec's package is missing)
        self._framers = {ns.name: _framer(ns) for ns in policy}
        # a dropped event is counted with the counters (trace_dropped), so it is written with them
        counters = self._counters
        self._tracer = (Tracer(policy.trace, policy.internal_prefix,
                               on_drop=lambda namespace, n: counters.add(namespace, "trace_dropped", n))
                        if policy.trace is not None else None)

    # ------------------------------------------------------------------ public, no I/O

    @property
    def failovers_followed(self) -> int:
        """Through Sentinel: primary switches this instance moved its pool for."""
        return self._failovers_followed

    def local_counters(self) -> dict[str, NamespaceCounters]:
        """What this instance has counted since it was built, per namespace."""
        return self._counters.totals()

    @property
    def counters_dropped(self) -> int:
        """Counts given up because their write timed out (see ``flush_counters``)."""
        return self._counters.dropped

    @property
    def trace_dropped(self) -> int:
        """Trace events dropped: the buffer was full, or their write failed (Redis down).

        Also counted per namespace as the ``trace_dropped`` counter, written with the others
        (``cachectl stats`` and ``cachectl model --url`` read it back)."""
        return self._tracer.dropped if self._tracer is not None else 0

    @property
    def breaker_state(self) -> str:
        """closed, open or half_open (see breaker.py)."""
        return self._breaker.state.value

    @property
    def l1_active(self) -> bool:
        """The L1 is on and subscribed to invalidations (it is bypassed otherwise)."""
        return self._l1 is not None and self._l1_subscribed()

    # ------------------------------------------------------------------ for the subclasses

    @abstractmethod
    def _l1_subscribed(self) -> bool:
        """Subscribed to invalidations, so the L1 may be used (a thread Event or a flag)."""

    def _l1_hit(self, ns: Namespace, key: str) -> Any:
        """The L1's value for ``key`` (counted as a fresh hit), or MISSING."""
        if self._l1 is None or not self._l1_subscribed():
            return MISSING
        value = self._l1.get(key)
        if value is not MISSING:
            self._count(ns.name, "fresh_hits")
        return value

    def _answer_get(self, ns: Namespace, key: str, read: tuple[bytes | None, int] | None) -> Any:
        """What ``get`` returns for a read (None: Redis was unusable), counted."""
        name = ns.name
        if read is None:
            value = self._fallback.get(key)
            self._count(name, "misses" if value is MISSING else "fresh_hits")
            return None if value is MISSING else value
        d = self._decide(ns, read[0], read[1], None)
        if d.action is Action.SERVE:
            self._count(name, "fresh_hits")
            self._trace_read(ns, key, "fresh", read[0])
            return d.value
        if d.action is Action.SERVE_REFRESH:
            self._count(name, "stale_hits")
            self._trace_read(ns, key, "stale", read[0])
            return d.value
        self._count(name, "misses")
        self._trace_read(ns, key, "miss", read[0])
        return None

    def _record(self, namespace: str, h: int, size: int | None, outcome: str,
                load_ms: float | None = None) -> None:
        """Record an access of traced key ``h`` (see Tracer.record)."""
        assert self._tracer is not None
        self._tracer.record(namespace, h, size, outcome, load_ms)

    def _trace_read(self, ns: Namespace, key: str, outcome: str, raw: bytes | None) -> None:
        """Record an access of a sampled key that loaded nothing (a no-op when not tracing)."""
        if self._tracer is not None:
            h = self._tracer.sampled(key)
            if h is not None:
                self._tracer.record(ns.name, h, len(raw) if raw is not None else 0, outcome)

    def _previous_value(self, read: tuple[bytes | None, int] | None) -> Any:
        """The decoded value of a read of a version N-1 key, or MISSING (absent, Redis
        unusable, or not decodable: then the origin is asked, as for any miss)."""
        if read is None or read[0] is None or read[1] == -2:
            return MISSING
        try:
            return self._ser.loads(read[0])
        except (ValueError, TypeError):
            return MISSING

    def _read_failed(self, ns: Namespace, exc: BaseException) -> tuple[bytes | None, int] | None:
        """After a read raised: WRONGTYPE is an answer (the key holds another type, a load
        overwrites it) and reads as a missing key; anything else is a failure (counted,
        told to the breaker) and None."""
        if isinstance(exc, rex.ResponseError) and str(exc).startswith("WRONGTYPE"):
            self._breaker.success()
            return None, -2
        self._breaker.failure()
        self._count(ns.name, "redis_errors")
        return None

    def _decide(self, ns: Namespace, raw: bytes | None, pttl_ms: int,
                mean_load_ms: float | None) -> Decision:
        """``decide`` for one read; a frame that cannot be read is a miss counted under
        ``redis_errors`` (never raised, never served)."""
        d = decide(ns, raw, pttl_ms, self._ser, mean_load_ms, self._rng)
        if d.corrupt:
            self._count(ns.name, "redis_errors")
        return d

    def _stored(self, ns: Namespace, data: bytes) -> bytes:
        """The serialised value as written: compressed per the namespace's ``compress:``
        (a frame), and a value that begins with the frame's magic escaped."""
        return self._framers[ns.name](data)

    def _encode(self, ns: Namespace, value: Any) -> bytes:
        """``value`` serialised (and compressed); ValueTooLargeError over the namespace's
        max_value_bytes, which bounds the stored size."""
        data = self._stored(ns, self._ser.dumps(value))
        if not check_size(ns, data):
            raise too_large(ns, data)
        return data

    def _encode_loaded(self, ns: Namespace, value: Any) -> bytes | None:
        """A loaded ``value`` serialised, or None when it cannot be stored: the serializer
        refuses it (a datetime, Decimal, set or bytes for JSON; NaN or Infinity, which
        JSON readers in other languages reject) or it is over max_value_bytes."""
        try:
            data = self._stored(ns, self._ser.dumps(value))
        except (TypeError, ValueError, OverflowError, RecursionError):
            return None
        return data if check_size(ns, data) else None

    def _soft_pttl(self, ns: Namespace) -> int:
        """The PTTL a soft invalidation sets; UsageError for a namespace without stale."""
        pttl = soft_expire_pttl_ms(ns)
        if ns.stale_ms <= 0 or pttl <= 0:
            raise UsageError(
                f"namespace {ns.name!r} has no stale window, so it cannot be soft-invalidated",
                hint=f"use invalidate(), or give {ns.name} a `stale:` duration in the policy")
        return pttl

    def _forget_tag_locally(self, tag: str) -> tuple[list[Namespace], list[str]]:
        """The namespaces tagged ``tag`` (UsageError if none) and their names, dropped
        from the L1 and the fallback store."""
        namespaces = list(self.policy.with_tag(tag))
        names = [ns.name for ns in namespaces]
        if self._l1 is not None:
            self._l1.discard_namespaces(names)
        self._fallback.discard_namespaces(names)
        return namespaces, names

    def _apply_invalidation(self, data: bytes) -> None:
        """An invalidation message from another process: drop those keys from the L1."""
        assert self._l1 is not None
        parsed = parse_invalidation(data)
        if parsed is None or parsed[0] == self._origin:
            return
        _, keys, namespaces = parsed
        self._l1_generation += 1
        self._l1.discard(keys)
        if namespaces:
            self._l1.discard_namespaces(namespaces)
