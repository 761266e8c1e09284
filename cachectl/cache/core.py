"""What the sync and the asyncio cache share: options, serialisation, scripts, state decisions.

Nothing here does I/O. ``Cache`` (sync.py) and ``AsyncCache`` (aio.py) read a key's value
and PTTL in one round trip, hand them to ``decide`` and act on the ``Decision``; both
count with the same ``CounterAggregator`` and keep the same breaker and local stores.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from cachectl.compression import MAGIC as FRAME_MAGIC
from cachectl.compression import CodecUnavailableError, CorruptFrameError
from cachectl.compression import decode as unframe
from cachectl.errors import KeyParamError, UsageError, ValueTooLargeError
from cachectl.freshness import Freshness, classify, fresh_remaining_ms
from cachectl.policy.model import Namespace, Policy

# KEYS[1] = the cached key. Returns {value or nil, PTTL}: false survives in a Lua table
# (nil would truncate it) and becomes a nil bulk reply.
READ_SCRIPT = """
local v = redis.call('GET', KEYS[1])
return {v, redis.call('PTTL', KEYS[1])}
"""

# KEYS[1] = a lock key, ARGV[1] = the token its holder set, ARGV[2] = milliseconds.
# ARGV[2] == 0: delete the lock (release). > 0: keep it that much longer (re-arm a
# throttle after a failed load). Only the holder's token may do either.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ms = tonumber(ARGV[2])
if ms == 0 then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ms)
"""


class Serializer(Protocol):
    """Turns values into the bytes stored in Redis and back."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """Compact UTF-8 JSON (``{"id":7}``): what any client in any language can read.

    NaN and Infinity raise ValueError (Python would write them as bare ``NaN``, which is
    not JSON and which other languages' parsers reject).
    """

    _decode = json.JSONDecoder().decode

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return JsonSerializer._decode(data.decode("utf-8"))


@dataclass(frozen=True)
class CacheOptions:
    """Tuning knobs; every duration in milliseconds. Pass them as keywords to ``from_policy``.

    timeout_ms            per-call Redis socket timeout (a slow Redis counts as down)
    connect_timeout_ms    Redis connect timeout
    soft_timeout_ms       with a fail-safe value at hand, wait this long for the loader, then
                          serve the fail-safe value and let the load finish in the background
                          (None: wait for the loader)
    hard_timeout_ms       the longest a caller waits for another caller's load of the same key
    lock_ttl_ms           how long the fleet-wide revalidation lock lives if never released
    fail_safe_throttle_ms after a failed load, nobody in the fleet reloads the key for this long
    breaker_failures      consecutive Redis failures that open the circuit breaker
    breaker_reset_ms      how long the breaker stays open before one call probes Redis
    fallback_max_items    size of the in-process LRU used while Redis is unavailable
    fallback_ttl_ms       the longest a fallback entry is served (capped by the namespace ttl)
    l1_max_items          size of the optional in-process L1 in front of Redis (0: off)
    l1_ttl_ms             the longest an L1 entry lives (also capped by its fresh time)
    counters              aggregate counters and write them to Redis in the background
    counters_interval_s   how often the background writer runs
    refresh_workers       threads (sync) or concurrent tasks (asyncio) that revalidate
    max_connections       connection pool size (standalone Redis); redis-py's default of 100
                          is too few for 100 threads plus the background work
    read_mode             "pipeline" (GET and PTTL sent together, no MULTI) or "lua"
    migrate               namespace -> callable turning a version N-1 value into a version N
                          one; for namespaces with ``read_previous: true`` (docs/library.md)
    """

    timeout_ms: float = 10.0
    connect_timeout_ms: float = 100.0
    soft_timeout_ms: float | None = None
    hard_timeout_ms: float = 10_000.0
    lock_ttl_ms: int = 10_000
    fail_safe_throttle_ms: int = 5_000
    breaker_failures: int = 5
    breaker_reset_ms: float = 1_000.0
    fallback_max_items: int = 10_000
    fallback_ttl_ms: int = 60_000
    l1_max_items: int = 0
    l1_ttl_ms: int = 1_000
    counters: bool = True
    counters_interval_s: float = 1.0
    refresh_workers: int = 4
    max_connections: int = 1024
    read_mode: str = "pipeline"
    serializer: Serializer = field(default_factory=JsonSerializer)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    migrate: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.read_mode not in ("pipeline", "lua"):
            raise UsageError(f"read_mode {self.read_mode!r} is not 'pipeline' or 'lua'")
        if self.timeout_ms <= 0 or self.hard_timeout_ms <= 0:
            raise UsageError("timeout_ms and hard_timeout_ms must be positive")
        if self.soft_timeout_ms is not None and self.soft_timeout_ms <= 0:
            raise UsageError("soft_timeout_ms must be positive (or None)")
        if self.breaker_failures < 1 or self.refresh_workers < 1:
            raise UsageError("breaker_failures and refresh_workers must be at least 1")


_OPTION_NAMES = frozenset(f.name for f in fields(CacheOptions))


def build_options(base: CacheOptions | None, overrides: Mapping[str, Any]) -> CacheOptions:
    """``base`` with ``overrides`` applied; UsageError naming an unknown option."""
    unknown = sorted(set(overrides) - _OPTION_NAMES)
    if unknown:
        from cachectl.policy.model import did_you_mean

        hint = did_you_mean(unknown[0], sorted(_OPTION_NAMES))
        raise UsageError(f"unknown cache option {unknown[0]!r}",
                         hint=hint or f"options: {', '.join(sorted(_OPTION_NAMES))}")
    return replace(base or CacheOptions(), **overrides)


def resolve_policy(path_or_policy: str | os.PathLike[str] | Policy,
                   env: Mapping[str, str] | None) -> Policy:
    """A Policy as given, or loaded from a file (``${VAR}`` interpolated from ``env``)."""
    if isinstance(path_or_policy, Policy):
        return path_or_policy
    if isinstance(path_or_policy, str | Path | os.PathLike):
        from cachectl.policy import load_policy

        return load_policy(Path(path_or_policy), env if env is not None else os.environ)
    raise UsageError(f"from_policy takes a path or a Policy, not {type(path_or_policy).__name__}")


def pack_get_pttl(key: str) -> bytes:
    """GET key and PTTL key in RESP, to be written in one packet (no MULTI)."""
    k = key.encode("utf-8")
    n = len(k)
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n" % (n, k, n, k)


def new_token() -> str:
    """A lock token unique to one holder."""
    return secrets.token_hex(8)


# ------------------------------------------------------------------- state decisions


class Action(Enum):
    """What a read must do next."""

    SERVE = "serve"              # fresh: return the value
    SERVE_REFRESH = "refresh"    # stale: return it and revalidate in the background
    LOAD_FAIL_SAFE = "fail_safe"  # fail-safe: load, and fall back to the value on failure
    LOAD = "load"                # gone (or unreadable): load in the caller


class Decision(NamedTuple):
    """(a tuple: built on every read, so as cheap as it gets)"""

    action: Action
    state: Freshness
    value: Any = None
    early: bool = False  # SERVE, but XFetch wants an early refresh
    corrupt: bool = False  # LOAD: the value is a compression frame that cannot be read


_UNREADABLE = object()
_CORRUPT = object()


def decode(serializer: Serializer, raw: bytes | None) -> Any:
    """The stored value, or ``_UNREADABLE`` when it cannot be deserialised (treated as gone),
    or ``_CORRUPT`` for a compression frame that cannot be read (a miss counted as an error:
    a corrupt frame, or a codec whose package is not installed here)."""
    if raw is None:
        return _UNREADABLE
    if raw[:3] == FRAME_MAGIC:  # compressed (docs/compression.md); plain values are as is
        try:
            raw = unframe(raw)
        except (CorruptFrameError, CodecUnavailableError):
            return _CORRUPT
    try:
        return serializer.loads(raw)
    except (ValueError, TypeError, UnicodeDecodeError):
        return _UNREADABLE


def decide(ns: Namespace, raw: bytes | None, pttl_ms: int, serializer: Serializer,
           mean_load_ms: float | None, rng: random.Random) -> Decision:
    """Apply docs/design.md's freshness rule (``cachectl.freshness.classify``) to one read.

    A key without expiry (not written by cachectl) is served and revalidated, which
    rewrites it with a policy TTL. XFetch (Vattani et al. 2015): while fresh, refresh
    early when ``-Δ·β·ln(rand) >= fresh time left``, Δ the mean load time.
    """
    state = classify(pttl_ms if raw is not None else -2, ns)
    if state is Freshness.GONE:
        return Decision(Action.LOAD, state)
    value = decode(serializer, raw)
    if value is _UNREADABLE:
        return Decision(Action.LOAD, Freshness.GONE)
    if value is _CORRUPT:
        return Decision(Action.LOAD, Freshness.GONE, corrupt=True)
    if state is Freshness.FRESH:
        beta = ns.early_refresh_beta
        early = False
        if beta and mean_load_ms:
            gap = -mean_load_ms * beta * math.log(1.0 - rng.random())
            early = gap >= fresh_remaining_ms(pttl_ms, ns)
        return Decision(Action.SERVE, state, value, early)
    if state is Freshness.STALE or state is Freshness.NO_TTL:
        return Decision(Action.SERVE_REFRESH, state, value)
    return Decision(Action.LOAD_FAIL_SAFE, state, value)


# ------------------------------------------------------------------- keys and params


class KeyBuilder:
    """Namespace lookup and key rendering, with clear errors raised at once."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._namespaces = dict(policy.namespaces)
        self.lock_prefix = f"{policy.internal_prefix}:lock:"
        self.channel = f"{policy.internal_prefix}:invalidate"
        # templates ending in one bare placeholder ("shop:product:{id}") render by concatenation
        self._fast: dict[str, tuple[str, str]] = {}
        for name, ns in self._namespaces.items():
            segs = ns.template.segments
            last = segs[-1]
            if (last.placeholder is not None and last.modifier is None and not last.prefix
                    and not last.suffix and all(s.is_literal for s in segs[:-1])):
                head = ":".join(s.prefix for s in segs[:-1])
                self._fast[name] = (head + ":" if head else "", last.placeholder)

    def namespace(self, name: str) -> Namespace:
        ns = self._namespaces.get(name)
        if ns is None:
            return self.policy.namespace(name)  # raises UsageError with a did-you-mean
        return ns

    def key(self, name: str, params: Mapping[str, object]) -> tuple[Namespace, str]:
        ns = self._namespaces.get(name)
        if ns is None:
            ns = self.policy.namespace(name)  # raises UsageError with a did-you-mean
        fast = self._fast.get(name)
        if fast is not None:
            value = params.get(fast[1], None)
            kind = type(value)
            if (kind is str and value and ":" not in value) or kind is int:  # type: ignore[operator]
                return ns, fast[0] + str(value)
        return ns, ns.template.render(params)  # the general case, and every error message

    def lock_key(self, key: str) -> str:
        return self.lock_prefix + key

    def previous_key(self, ns: Namespace, params: Mapping[str, object]) -> str:
        """The key ``params`` had at the namespace's version N-1 (``version`` >= 2)."""
        assert ns.version is not None and ns.version >= 2
        return ns.template_at(ns.version - 1).render(params)


def check_migrations(policy: Policy, migrate: Mapping[str, Callable[[Any], Any]]) -> None:
    """UsageError unless every ``migrate`` entry names a namespace with ``read_previous: true``
    at version 2 or more, and is callable."""
    for name, fn in migrate.items():
        ns = policy.namespace(name)  # UsageError with a did-you-mean
        if not ns.read_previous or (ns.version or 0) < 2:
            raise UsageError(f"migrate[{name!r}] is given, but namespace {name} does not read a "
                             "previous version",
                             hint=f"set read_previous: true and version: 2 (or more) on {name}")
        if not callable(fn):
            raise UsageError(f"migrate[{name!r}] is not callable")


def placeholder_binder(fn: Callable[..., Any], ns: Namespace) -> Callable[..., dict[str, object]]:
    """A function mapping a call's arguments to ``ns``'s placeholders, by parameter name.

    Raises KeyParamError at once when ``fn`` has no parameter for a placeholder.
    """
    sig = inspect.signature(fn)
    names = set(sig.parameters)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    missing = [p for p in ns.template.placeholders if p not in names]
    if missing and not var_kw:
        raise KeyParamError(
            f"@cached({ns.name!r}): {getattr(fn, '__qualname__', fn)!r} has no parameter "
            f"{', '.join(missing)} for key {ns.template.source!r}")
    wanted = ns.template.placeholders

    def bind(*args: Any, **kwargs: Any) -> dict[str, object]:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        for p in sig.parameters.values():
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(arguments.pop(p.name, {}))
        return {name: arguments[name] for name in wanted if name in arguments}

    return bind


def check_size(ns: Namespace, data: bytes) -> bool:
    return ns.max_value_bytes is None or len(data) <= ns.max_value_bytes


def too_large(ns: Namespace, data: bytes) -> ValueTooLargeError:
    return ValueTooLargeError(
        f"value for namespace {ns.name!r} is {len(data)} bytes, over max_value_bytes "
        f"{ns.max_value_bytes}", hint="store less, or raise max_value_bytes in the policy")


def invalidation_message(origin: str, keys: list[str] | None = None,
                         namespaces: list[str] | None = None) -> bytes:
    """The pub/sub message telling other instances to drop L1 entries (format v1)."""
    body: dict[str, Any] = {"v": 1, "o": origin}
    if keys:
        body["k"] = keys
    if namespaces:
        body["ns"] = namespaces
    return json.dumps(body, separators=(",", ":")).encode()


def parse_invalidation(data: bytes) -> tuple[str, list[str], list[str]] | None:
    try:
        body = json.loads(data)
        return str(body.get("o", "")), list(body.get("k", [])), list(body.get("ns", []))
    except (ValueError, TypeError, AttributeError):
        return None


def fallback_expiry_ms(ns: Namespace, options: CacheOptions) -> int:
    """How long the in-process fallback store keeps a value while Redis is unavailable."""
    return max(1, min(ns.ttl_ms, options.fallback_ttl_ms))


def l1_expiry_ms(ns: Namespace, pttl_ms: int | None, options: CacheOptions) -> int:
    """How long an L1 entry may live: never past the value's fresh time."""
    limit = options.l1_ttl_ms
    if pttl_ms is not None and pttl_ms > 0:
        limit = min(limit, fresh_remaining_ms(pttl_ms, ns))
    else:
        limit = min(limit, ns.ttl_ms)
    return limit
