"""Flush: remove (or soften) exactly the keys of chosen namespaces without blocking Redis.

A target is a namespace (``--namespace``, or each namespace a ``--tag`` names), the
one key a template renders (``--key``), or a raw glob (``--pattern``, only with
``force``). Keys are found by a cluster-aware SCAN with the namespace's escaped glob,
confirmed by its exact regex, and then by ``NamespaceMatcher``: a key that an
earlier namespace owns (overlapping templates) is never touched, nor is anything
under ``policy.internal_prefix`` (cachectl's own counters, audit stream, locks).

Hard flush: ``UNLINK`` in bounded batches (the value is freed off the main thread).
There is no path to FLUSHDB/FLUSHALL or to a multi-thousand-key DEL.
Soft flush: every key's PTTL is lowered to the top of its namespace's stale band
(``soft_expire_pttl_ms``) by a Lua script that never lengthens a TTL (PEXPIRE …
LT semantics, checked atomically per key); values are untouched, so the library
serves them as stale and revalidates them one caller at a time.

Throughput: SCAN replies are read one ahead by a thread, filtered in C (one compiled
regex per target, see ``_selector``), gathered into full batches, and each batch is
UNLINKed on another connection while the next SCAN runs, so the server is rarely
idle waiting for the client. Every command stays well under a millisecond.

Pacing: ``rate`` caps keys per second; the server's own latency (a PING timed
between batches) is watched throughout, and batches shrink and pause when it rises.
Every destructive run appends one entry to the capped stream
``<internal_prefix>:audit`` (``read_history`` lists it).

Raises ``UsageError`` for a wrong selection and ``InterruptedWork`` (with the partial
``FlushResult``) when ``should_stop`` asks to stop; redis-py errors propagate (the CLI
turns them into exit 3 with ``connection.redis_errors``).
"""

from __future__ import annotations

import contextlib
import getpass
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis.exceptions as rex
from redis.crc import key_slot

from cachectl.errors import InterruptedWork, UsageError
from cachectl.freshness import soft_expire_pttl_ms
from cachectl.keyspace import NamespaceMatcher, scan_keys
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Namespace, Policy
from cachectl.policy.template import GLOB_SPECIALS, KeyParamError
from cachectl.progress import ProgressCallback, no_progress

DEFAULT_BATCH = 500  # keys per UNLINK: well under a millisecond of server time (benchmarks/flush.py)
MAX_BATCH = 10_000
MIN_BATCH = 50
SCAN_FACTOR = 2  # SCAN COUNT per batch: a SCAN returns only the keys its glob matches
MAX_SCAN_COUNT = 10_000
AUDIT_MAXLEN = 10_000
EXACT_COUNT_LIMIT = 200_000  # keys per deployment; above this, plan_flush estimates
SAMPLE_KEYS = 20_000
EXAMPLES = 5

__all__ = [
    "AuditEntry",
    "FlushMode",
    "FlushPlan",
    "FlushResult",
    "FlushTarget",
    "LatencyGovernor",
    "SoftenCounts",
    "TargetPlan",
    "TargetResult",
    "append_audit",
    "audit_key",
    "check_soft",
    "current_actor",
    "flush_namespaces",
    "plan_flush",
    "read_history",
    "select_targets",
    "soften_keys",
    "unlink_keys",
]


class FlushMode(StrEnum):
    HARD = "hard"  # UNLINK: never served again, not even on error
    SOFT = "soft"  # PTTL lowered into the stale band: served stale, revalidated


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class FlushTarget:
    """One thing to flush: a namespace, the single key a template renders, or a raw glob."""

    kind: str  # "namespace" | "key" | "pattern"
    name: str  # the namespace's name, or the pattern
    selector: str  # how the operator chose it: "namespace product", "tag catalog", …
    key: bytes | None = None

    @property
    def label(self) -> str:
        if self.kind == "key" and self.key is not None:
            return f"key {self.key.decode('utf-8', 'backslashreplace')}"
        return f"{self.kind} {self.name}"


def select_targets(
    policy: Policy,
    *,
    namespaces: Sequence[str] = (),
    tags: Sequence[str] = (),
    key: str | None = None,
    key_params: Sequence[str] = (),
    pattern: str | None = None,
    force: bool = False,
    soft: bool = False,
) -> tuple[FlushTarget, ...]:
    """Turn the operator's selection into targets; UsageError when it is wrong or unsafe.

    Exactly one kind of selection is allowed. ``key_params`` are ``PARAM=VALUE``
    strings filling the template of namespace ``key``. ``pattern`` needs ``force`` and
    is refused when it would match every key. A soft flush needs namespaces with a
    stale window.
    """
    given = [name for name, on in (("--namespace", bool(namespaces)), ("--tag", bool(tags)),
                                   ("--key", key is not None), ("--pattern", pattern is not None))
             if on]
    if not given:
        raise UsageError("nothing to flush",
                         hint="pass --namespace NS, --tag TAG, --key NS PARAM=VALUE… "
                         "(or --history to list past flushes)")
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be combined",
                         hint="flush one kind of selection per run")
    if key_params and key is None:
        raise UsageError(f"unexpected argument {key_params[0]!r}",
                         hint="PARAM=VALUE arguments go with --key NS, e.g. --key product id=42")
    targets: list[FlushTarget] = []
    if pattern is not None:
        targets.append(_pattern_target(policy, pattern, force=force, soft=soft))
    elif key is not None:
        targets.append(_key_target(policy, key, key_params))
    else:
        seen: set[str] = set()
        chosen: list[tuple[Namespace, str]] = []
        for name in namespaces:
            chosen.append((policy.namespace(name), f"namespace {name}"))
        for tag in tags:
            chosen.extend((ns, f"tag {tag}") for ns in policy.with_tag(tag))
        for ns, selector in chosen:
            if ns.name not in seen:
                seen.add(ns.name)
                targets.append(FlushTarget("namespace", ns.name, selector))
    if soft:
        check_soft(policy, targets)
    return tuple(targets)


def check_soft(policy: Policy, targets: Sequence[FlushTarget]) -> None:
    """UsageError unless every target is a namespace (or key) with a stale window."""
    for target in targets:
        if target.kind == "pattern":
            raise UsageError("--soft needs a namespace's stale window; --pattern has none",
                             hint="use --namespace or --tag with --soft")
        ns = policy.namespace(target.name)
        if ns.stale_ms <= 0 or soft_expire_pttl_ms(ns) <= 0:
            raise UsageError(
                f"namespace {ns.name!r} has no stale window, so it cannot be soft-flushed",
                hint=f"drop --soft to remove its keys, or give {ns.name} a `stale:` "
                "duration in the policy")


def _key_target(policy: Policy, name: str, params: Sequence[str]) -> FlushTarget:
    ns = policy.namespace(name)
    values: dict[str, str] = {}
    for item in params:
        param, sep, value = item.partition("=")
        if not sep or not param:
            first = ns.template.placeholders[0] if ns.template.placeholders else "id"
            raise UsageError(f"{item!r} is not PARAM=VALUE", hint=f"e.g. --key {name} {first}=42")
        if param not in ns.template.placeholders:
            raise UsageError(
                f"namespace {name!r} has no placeholder {{{param}}}",
                hint=f"its key is {ns.template.source!r}; placeholders: "
                f"{', '.join(ns.template.placeholders) or '(none)'}")
        values[param] = value
    try:
        rendered = ns.template.render(values)
    except KeyParamError as exc:
        raise UsageError(str(exc), hint=f"e.g. --key {name} "
                         + " ".join(f"{p}=…" for p in ns.template.placeholders)) from None
    return FlushTarget("key", ns.name, f"key {rendered}", key=rendered.encode())


def _pattern_target(policy: Policy, pattern: str, *, force: bool, soft: bool) -> FlushTarget:
    if not force:
        raise UsageError("--pattern removes keys no namespace vouches for; it needs --force",
                         hint="prefer --namespace or --tag; add --force if you mean it")
    if soft:
        check_soft(policy, [FlushTarget("pattern", pattern, f"pattern {pattern}")])
    if matches_everything(pattern):
        raise UsageError(f"--pattern {pattern!r} would match every key; refused",
                         hint="give a literal part, e.g. --pattern 'shop:tmp:*'; "
                         "cachectl never empties a whole database")
    return FlushTarget("pattern", pattern, f"pattern {pattern}")


def matches_everything(pattern: str) -> bool:
    """Whether a Redis glob has no literal character at all (``*``, ``?*``, ``[a-z]*``…).

    Such a glob matches every key, or nearly every key, of any keyspace.
    """
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            return False  # an escaped character is a literal
        if ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                return False  # an unclosed '[' is a literal to Redis
            i = end + 1
            continue
        if ch not in GLOB_SPECIALS:
            return False
        i += 1
    return True


# --------------------------------------------------------------------------- primitives


_SOFTEN_LUA = """
-- KEYS: the keys to soften (one hash slot on a cluster)
-- ARGV[1]: the PTTL to set, in ms (the top of the namespace's stale band)
-- Per key, atomically: missing -> vanished; no expiry, or a PTTL above ARGV[1] ->
-- PEXPIRE to ARGV[1] (a TTL is only ever shortened, as PEXPIRE ... LT would);
-- already at or below ARGV[1] -> left alone. The value is never read or written.
-- Returns {softened (incl. no_ttl), no_ttl, already_stale, vanished}.
local target = tonumber(ARGV[1])
local softened, no_ttl, already, vanished = 0, 0, 0, 0
for _, key in ipairs(KEYS) do
  local pttl = redis.call('PTTL', key)
  if pttl == -2 then
    vanished = vanished + 1
  elseif pttl == -1 or pttl > target then
    redis.call('PEXPIRE', key, target)
    softened = softened + 1
    if pttl == -1 then no_ttl = no_ttl + 1 end
  else
    already = already + 1
  end
end
return {softened, no_ttl, already, vanished}
"""


@dataclass(frozen=True)
class SoftenCounts:
    """What ``soften_keys`` did to a batch."""

    softened: int = 0  # PTTL lowered to the stale band (includes no_ttl)
    no_ttl: int = 0  # had no expiry at all and now have one
    already_stale: int = 0  # PTTL already at or below the band: left alone
    vanished: int = 0  # no longer existed

    def __add__(self, other: SoftenCounts) -> SoftenCounts:
        return SoftenCounts(self.softened + other.softened, self.no_ttl + other.no_ttl,
                            self.already_stale + other.already_stale,
                            self.vanished + other.vanished)


def _is_cluster_client(node: Any) -> bool:
    return hasattr(node, "get_primaries")


def _by_slot(keys: Iterable[bytes]) -> dict[int, list[bytes]]:
    groups: dict[int, list[bytes]] = {}
    for k in keys:
        groups.setdefault(key_slot(k), []).append(k)
    return groups


def _crossslot(exc: rex.ResponseError) -> bool:
    return "CROSSSLOT" in str(exc)


def unlink_keys(node: Any, keys: Sequence[bytes], *, cluster: bool | None = None) -> int:
    """UNLINK ``keys`` on ``node``; return how many existed (and are now gone).

    ``node`` is a standalone client (one primary) or a RedisCluster client. On a
    cluster node the keys are grouped per hash slot into one pipelined round trip;
    ``cluster=None`` finds out from a CROSSSLOT reply. UNLINK is atomic per call and
    skips missing keys, so a key deleted or expired meanwhile is simply not counted.
    Callers bound ``len(keys)`` (a batch); nothing here sends DEL.
    """
    if not keys:
        return 0
    if _is_cluster_client(node):
        return int(node.unlink(*keys))  # redis-py splits it per slot
    if not cluster:
        try:
            return int(node.unlink(*keys))
        except rex.ResponseError as exc:
            if cluster is False or not _crossslot(exc):
                raise
    pipe = node.pipeline(transaction=False)
    for group in _by_slot(keys).values():
        pipe.unlink(*group)
    return sum(int(n) for n in pipe.execute())


def soften_keys(node: Any, keys: Sequence[bytes], pttl_ms: int, *,
                cluster: bool | None = None) -> SoftenCounts:
    """Lower each key's PTTL to ``pttl_ms`` unless it is already lower; values untouched.

    A key without expiry gets ``pttl_ms`` too: a cached key should never live forever,
    and soft flush means "serve stale, then revalidate". One atomic Lua call per batch
    (per hash slot on a cluster), so a concurrent write cannot be lengthened or lost.
    """
    if not keys:
        return SoftenCounts()
    if pttl_ms <= 0:
        raise ValueError("pttl_ms must be positive")
    script = node.register_script(_SOFTEN_LUA)
    try:
        if not cluster and not _is_cluster_client(node):
            try:
                return SoftenCounts(*(int(n) for n in script(keys=list(keys), args=[pttl_ms])))
            except rex.ResponseError as exc:
                if cluster is False or not _crossslot(exc):
                    raise
        total = SoftenCounts()
        for group in _by_slot(keys).values():
            total = total + SoftenCounts(*(int(n) for n in script(keys=group, args=[pttl_ms])))
        return total
    except rex.ResponseError as exc:
        if "can't run this command" in str(exc):  # an ACL refused PTTL/PEXPIRE in the script
            raise rex.NoPermissionError(
                "NOPERM the soften script's commands were refused; the user needs "
                f"'pttl' and 'pexpire' as well as 'evalsha' ({str(exc).splitlines()[0]})"
            ) from exc
        raise


# --------------------------------------------------------------------------- pacing


class LatencyGovernor:
    """Adapts the batch size to the server's latency as measured between batches.

    ``observe(rtt_ms)`` takes the round trip of a PING sent after a batch. The
    lowest round trip seen is the baseline; a moving average (so one scheduling
    hiccup on a busy client host does not count) above ``max(slow_ms, 4 × baseline)``
    halves the batch and asks for a short pause, so other clients' commands are
    served first; once it is low again the batch grows back toward ``max_batch``.
    """

    def __init__(self, max_batch: int, *, slow_ms: float = 2.0, min_batch: int = MIN_BATCH,
                 max_pause_s: float = 0.05, smoothing: float = 0.3) -> None:
        self.max_batch = max(1, max_batch)
        self.min_batch = min(min_batch, self.max_batch)
        self.batch = self.max_batch
        self.slow_ms = slow_ms
        self.max_pause_s = max_pause_s
        self.smoothing = smoothing
        self.baseline_ms: float | None = None
        self.average_ms: float | None = None
        self.backoffs = 0
        self.max_rtt_ms = 0.0

    def observe(self, rtt_ms: float) -> float:
        """Record a PING round trip; return the seconds to pause before the next batch."""
        self.max_rtt_ms = max(self.max_rtt_ms, rtt_ms)
        self.baseline_ms = rtt_ms if self.baseline_ms is None else min(self.baseline_ms, rtt_ms)
        self.average_ms = rtt_ms if self.average_ms is None else (
            (1 - self.smoothing) * self.average_ms + self.smoothing * rtt_ms)
        limit = max(self.slow_ms, 4 * self.baseline_ms)
        if self.average_ms > limit:
            self.backoffs += 1
            self.batch = max(self.min_batch, self.batch // 2)
            return min(self.max_pause_s, self.average_ms * 2 / 1000)
        self.batch = min(self.max_batch, self.batch + max(1, self.max_batch // 4))
        return 0.0


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class TargetPlan:
    """How many keys a target holds (counted or estimated), and a few of them."""

    target: str
    kind: str
    name: str
    keys: int
    estimated: bool
    examples: tuple[bytes, ...]
    soft_pttl_ms: int | None = None


@dataclass(frozen=True)
class FlushPlan:
    """What a flush would touch, before it touches anything."""

    mode: FlushMode
    targets: tuple[TargetPlan, ...]
    keys: int
    estimated: bool  # counts extrapolated from a SCAN sample (huge keyspaces)
    sampled_keys: int  # keys the estimate looked at (0 when counted exactly)
    dbsize: int  # keys on every primary together


def _internal(policy: Policy) -> bytes:
    return policy.internal_prefix.encode() + b":"


def _owned(policy: Policy, matcher: NamespaceMatcher, target: FlushTarget, key: bytes) -> bool:
    """Whether ``key`` is the target's to flush (never cachectl's own keys)."""
    if key.startswith(_internal(policy)):
        return False
    if target.kind == "pattern":
        return True
    owner = matcher.namespace_of(key)
    return owner is not None and owner.name == target.name


def _unnamed(pattern: bytes) -> bytes:
    """A template regex with its named groups made plain (to combine several)."""
    return re.sub(rb"\(\?P<[A-Za-z_][A-Za-z0-9_]*>", b"(?:", pattern)


def _owner_regex(policy: Policy, target: FlushTarget) -> re.Pattern[bytes] | None:
    """One compiled test for "this key, which the target's regex accepts, is its to flush".

    Only namespaces listed before the target whose templates can overlap it can take
    one of its keys away (the policy's first matching namespace owns a key), and a key
    under ``internal_prefix`` is never anyone's. Both become negative look-aheads in
    front of the target's own regex, so a whole SCAN batch is filtered in C. None when
    neither can happen (no such rival, and the template's literal prefix rules out the
    internal one): then every key the target's regex accepts is the target's.
    """
    ns = policy.namespace(target.name)
    internal = _internal(policy)
    rivals: list[bytes] = []
    for other in policy.namespaces.values():
        if other.name == ns.name:
            break
        if other.template.can_overlap(ns.template):
            rivals.append(_unnamed(other.template.regex.pattern))
    literal = ns.template.literal_prefix.encode()
    # a key starts with the literal prefix; it can start with `internal` only if one of
    # the two starts with the other
    internal_possible = literal.startswith(internal) or internal.startswith(literal)
    if not rivals and not internal_possible:
        return None
    guard = b"(?!" + re.escape(internal) + b")" if internal_possible else b""
    if rivals:
        guard += b"(?!(?:" + b"|".join(rivals) + rb")\Z)"
    return re.compile(guard + _unnamed(ns.template.regex.pattern), re.DOTALL)


def _owner_test(policy: Policy, target: FlushTarget) -> Callable[[bytes], bool]:
    """A per-key test equal to ``_owned`` for keys the target's exact regex accepts."""
    internal = _internal(policy)
    if target.kind == "pattern":
        return lambda k: not k.startswith(internal)
    rx = _owner_regex(policy, target)
    if rx is None:
        return lambda k: True
    fullmatch = rx.fullmatch
    return lambda k: fullmatch(k) is not None


Selector = Callable[[list[bytes]], tuple[list[bytes], int]]


def _selector(policy: Policy, target: FlushTarget) -> Selector:
    """``keys -> (the target's own keys, how many others its exact regex accepted)``.

    ``keys`` come from SCAN with the target's glob (which only narrows). Keys the exact
    regex rejects are dropped silently; keys it accepts that another namespace (or
    cachectl itself) owns are counted, never returned. Filtering runs in C
    (``filter`` over compiled regexes): a flush handles millions of keys.
    """
    internal = _internal(policy)
    if target.kind == "pattern":
        def by_prefix(keys: list[bytes]) -> tuple[list[bytes], int]:
            own = [k for k in keys if not k.startswith(internal)]
            return own, len(keys) - len(own)
        return by_prefix
    exact = policy.namespace(target.name).template.regex.fullmatch
    owner = _owner_regex(policy, target)
    if owner is None:
        def by_regex(keys: list[bytes]) -> tuple[list[bytes], int]:
            return list(filter(exact, keys)), 0
        return by_regex
    owns = owner.fullmatch

    def by_owner(keys: list[bytes]) -> tuple[list[bytes], int]:
        hits = list(filter(exact, keys))
        own = list(filter(owns, hits))
        return own, len(hits) - len(own)
    return by_owner


def _glob_regex(pattern: str) -> Callable[[bytes], bool]:
    """A client-side matcher for a Redis glob (for sampled estimates only)."""
    # translate per character so the sample agrees with SCAN MATCH on ordinary patterns
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        else:
            out.append(re.escape(ch))
        i += 1
    rx = re.compile(("".join(out)).encode("utf-8"), re.DOTALL)
    return lambda key: rx.fullmatch(key) is not None


def plan_flush(
    client: Any,
    policy: Policy,
    targets: Sequence[FlushTarget],
    *,
    soft: bool = False,
    examples: int = EXAMPLES,
    exact_limit: int = EXACT_COUNT_LIMIT,
    sample_keys: int = SAMPLE_KEYS,
) -> FlushPlan:
    """Count each target's keys and pick a few examples, changing nothing.

    Exact (a full SCAN per target) when every primary together holds at most
    ``exact_limit`` keys; otherwise estimated: the first ``sample_keys`` keys of an
    unfiltered SCAN (which visits hash buckets spread over the whole table) are
    classified, and each target's share is scaled to DBSIZE.
    """
    nodes = _primaries(client)
    sizes = [int(n.dbsize()) for n in nodes]
    dbsize = sum(sizes)
    matcher = NamespaceMatcher.from_policy(policy)
    mode = FlushMode.SOFT if soft else FlushMode.HARD
    estimate = dbsize > exact_limit
    counts = {t: 0 for t in targets}
    found: dict[FlushTarget, list[bytes]] = {t: [] for t in targets}
    sampled = 0
    key_targets = [t for t in targets if t.kind == "key"]
    for t in key_targets:
        assert t.key is not None
        if _owned(policy, matcher, t, t.key) and client.exists(t.key):
            counts[t] = 1
            found[t].append(t.key)
    scan_targets = [t for t in targets if t.kind != "key"]
    if estimate and scan_targets:
        tests = {t: _sample_filter(policy, t) for t in scan_targets}
        per_node = max(1, sample_keys // max(1, len(nodes)))
        for node, size in zip(nodes, sizes, strict=True):
            seen_here = 0
            hits = dict.fromkeys(scan_targets, 0)
            cursor = 0
            while seen_here < per_node:
                cursor, keys = node.scan(cursor=cursor, count=1000)
                seen_here += len(keys)
                for t, test in tests.items():
                    kept = test(keys)
                    hits[t] += len(kept)
                    found[t].extend(kept[:examples - len(found[t])])
                if cursor == 0:
                    break
            sampled += seen_here
            exhaustive = cursor == 0
            for t in scan_targets:
                counts[t] += hits[t] if exhaustive or seen_here == 0 else round(
                    hits[t] * size / seen_here)
    else:
        for t in scan_targets:
            select = _selector(policy, t)
            for _node, keys in scan_keys(client, _glob(policy, t), count=1000):
                kept = select(keys)[0]
                counts[t] += len(kept)
                found[t].extend(kept[:examples - len(found[t])])
    plans = tuple(
        TargetPlan(t.label, t.kind, t.name, counts[t], estimate and t.kind != "key",
                   tuple(found[t][:examples]),
                   soft_expire_pttl_ms(policy.namespace(t.name)) if soft else None)
        for t in targets)
    return FlushPlan(mode, plans, sum(p.keys for p in plans),
                     any(p.estimated for p in plans), sampled if estimate else 0, dbsize)


def _glob(policy: Policy, target: FlushTarget) -> str:
    """The SCAN MATCH glob of a namespace or pattern target."""
    if target.kind == "pattern":
        return target.name
    return policy.namespace(target.name).template.glob


def _sample_filter(policy: Policy, target: FlushTarget) -> Callable[[list[bytes]], list[bytes]]:
    """The keys of an unfiltered SCAN batch that are the target's to flush."""
    select = _selector(policy, target)
    if target.kind == "pattern":
        glob = _glob_regex(target.name)
        return lambda keys: select([k for k in keys if glob(k)])[0]
    return lambda keys: select(keys)[0]


def _primaries(client: Any) -> list[Any]:
    from cachectl.connection import primaries

    return primaries(client)


# --------------------------------------------------------------------------- flush


@dataclass(frozen=True)
class TargetResult:
    """What a flush did to one target."""

    target: str
    kind: str
    name: str
    matched: int  # keys found that are the target's to flush
    changed: int  # removed (hard) or softened (soft)
    vanished: int  # gone (expired or deleted by someone else) before we got to them
    other_namespace: int  # matched the glob, but owned by another namespace or by cachectl
    already_stale: int = 0  # soft: PTTL already within the stale band
    no_ttl: int = 0  # soft: had no expiry; now expire at the top of the stale band
    examples: tuple[bytes, ...] = ()

    @property
    def skipped(self) -> int:
        return self.vanished + self.other_namespace + self.already_stale


@dataclass(frozen=True)
class FlushResult:
    """The outcome of ``flush_namespaces`` (also the partial result of an interrupted run)."""

    mode: FlushMode
    dry_run: bool
    what: str
    targets: tuple[TargetResult, ...]
    seconds: float
    batches: int
    backoffs: int  # times the latency governor shrank the batch and paused
    paused_s: float  # seconds spent pausing for the server's latency or the rate limit
    max_ping_ms: float  # the highest PING round trip seen between batches
    interrupted: bool = False
    audit_id: str | None = None
    audit_error: str | None = None  # the audit entry could not be written (the flush was)

    @property
    def matched(self) -> int:
        return sum(t.matched for t in self.targets)

    @property
    def changed(self) -> int:
        return sum(t.changed for t in self.targets)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.targets)

    @property
    def keys_per_s(self) -> float:
        return self.matched / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        changed_name = "softened" if self.mode is FlushMode.SOFT else "removed"
        return {
            "mode": self.mode.value,
            "dry_run": self.dry_run,
            "what": self.what,
            "matched": self.matched,
            changed_name: 0 if self.dry_run else self.changed,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "keys_per_s": round(self.keys_per_s, 1),
            "interrupted": self.interrupted,
            "audit_id": self.audit_id,
            "audit_error": self.audit_error,
            "pacing": {"batches": self.batches, "backoffs": self.backoffs,
                       "paused_s": round(self.paused_s, 3),
                       "max_ping_ms": round(self.max_ping_ms, 3)},
            "targets": [
                {"target": t.target, "kind": t.kind, "name": t.name, "matched": t.matched,
                 changed_name: t.changed, "skipped": t.skipped,
                 "skipped_detail": {"vanished": t.vanished, "other_namespace": t.other_namespace,
                                    "already_stale": t.already_stale},
                 **({"no_ttl": t.no_ttl} if self.mode is FlushMode.SOFT else {}),
                 "examples": list(t.examples)}
                for t in self.targets],
        }


@dataclass
class _Tally:
    """Mutable counts while a target is being flushed."""

    matched: int = 0
    changed: int = 0
    vanished: int = 0
    other: int = 0
    already: int = 0
    no_ttl: int = 0
    examples: list[bytes] = field(default_factory=list)

    def freeze(self, t: FlushTarget) -> TargetResult:
        return TargetResult(t.label, t.kind, t.name, self.matched, self.changed, self.vanished,
                            self.other, self.already, self.no_ttl, tuple(self.examples))


@dataclass(frozen=True)
class Actor:
    """Who ran a flush, for the audit trail."""

    user: str
    host: str


def current_actor() -> Actor:
    """The local user and host name (for the audit entry)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return Actor(user, socket.gethostname())


def flush_namespaces(
    client: Any,
    policy: Policy,
    targets: Sequence[FlushTarget],
    *,
    soft: bool = False,
    dry_run: bool = False,
    rate: float | None = None,
    batch: int = DEFAULT_BATCH,
    on_progress: ProgressCallback = no_progress,
    totals: dict[str, int] | None = None,
    should_stop: Callable[[], bool] | None = None,
    actor: Actor | None = None,
    examples: int = EXAMPLES,
    watch_latency: bool = True,
    latency_check_s: float = 0.02,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> FlushResult:
    """Remove (or with ``soft``, soften) every key of ``targets``; return what was done.

    ``batch`` bounds the keys per UNLINK/script call (1..10000); ``rate`` caps keys
    per second; ``totals`` (target label -> planned count) feeds ``on_progress``.
    ``should_stop`` is polled after every batch: when it returns True the run stops
    there, appends its audit entry, and raises InterruptedWork carrying the partial
    FlushResult (a rerun finishes the job: flushed keys are simply not found again).
    ``dry_run`` scans and counts, touching nothing and writing no audit entry.
    ``watch_latency``: time a PING on the node after a batch, at most every
    ``latency_check_s`` seconds or ten round trips, whichever is longer (0: after
    every batch), and let ``LatencyGovernor`` shrink batches and pause.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch {batch} is out of range", hint=f"use 1..{MAX_BATCH}")
    if rate is not None and rate <= 0:
        raise UsageError(f"--rate {rate:g} must be positive", hint="e.g. --rate 5000 (keys/s)")
    mode = FlushMode.SOFT if soft else FlushMode.HARD
    if soft:  # library callers may build targets themselves
        check_soft(policy, targets)
    limiter = RateLimiter(rate, clock=clock, sleep=sleep)
    governor = LatencyGovernor(batch)

    def scan_count() -> int:
        return min(MAX_SCAN_COUNT, max(1, round(SCAN_FACTOR * governor.batch)))
    cluster = _is_cluster_client(client)
    tallies = {t: _Tally() for t in targets}
    started = clock()
    counters: dict[str, float] = {"batches": 0, "paused": 0.0}
    next_check = [started]
    interrupted = False

    def finish() -> FlushResult:
        return FlushResult(mode, dry_run, describe(targets), tuple(tallies[t].freeze(t) for t in targets),
                           clock() - started, int(counters["batches"]), governor.backoffs,
                           float(counters["paused"]), governor.max_rtt_ms, interrupted)

    # Three connections keep the server busy: _ScanAhead's thread issues the SCANs back
    # to back, this thread filters their replies into batches, and one worker sends
    # each batch's UNLINK (or script). At most one batch is ever in flight, and it is
    # always settled (counted) before stopping.
    worker = None if dry_run else ThreadPoolExecutor(1, thread_name_prefix="cachectl-flush")
    in_flight: list[tuple[Future[Any], _Tally, int]] = []

    def settle() -> None:
        while in_flight:
            future, tally, sent = in_flight[0]
            done = future.result()
            in_flight.pop(0)
            if isinstance(done, SoftenCounts):
                tally.changed += done.softened
                tally.no_ttl += done.no_ttl
                tally.already += done.already_stale
                tally.vanished += done.vanished
            else:
                tally.changed += done
                tally.vanished += sent - done

    def act(node: Any, target: FlushTarget, keys: list[bytes]) -> None:
        tally = tallies[target]
        tally.matched += len(keys)
        room = examples - len(tally.examples)
        if room > 0:
            tally.examples.extend(keys[:room])
        if worker is None or not keys:
            return
        counters["paused"] += limiter.wait(len(keys))
        settle()
        future: Future[Any]
        if soft:
            pttl = soft_expire_pttl_ms(policy.namespace(target.name))
            future = worker.submit(soften_keys, node, keys, pttl, cluster=cluster or None)
        else:
            future = worker.submit(unlink_keys, node, keys, cluster=cluster or None)
        in_flight.append((future, tally, len(keys)))
        counters["batches"] += 1
        if watch_latency and clock() >= next_check[0]:
            t0 = clock()
            node.ping()
            rtt = clock() - t0
            pause = governor.observe(rtt * 1000)
            if pause:
                settle()
                sleep(pause)
                counters["paused"] += pause
            # probing costs a round trip too: keep it under ~10 % of the time
            if latency_check_s > 0:
                next_check[0] = clock() + max(latency_check_s, 10 * rtt)

    try:
        for target in targets:
            tally = tallies[target]
            total = (totals or {}).get(target.label)
            on_progress(target.label, 0, total)
            found = _owned_batches(client, policy, target, tally, scan_count)
            for node, chunk in _chunks(found, lambda: governor.batch):
                act(node, target, chunk)
                on_progress(target.label, tally.matched, total)
                if should_stop is not None and should_stop():
                    interrupted = True
                    break
            settle()
            if target.kind == "key":
                # one named key: one that did not exist was never matched, not skipped
                tally.matched -= tally.vanished
                tally.vanished = 0
            if interrupted:
                break
            on_progress(target.label, tally.matched, max(total or 0, tally.matched))
    except KeyboardInterrupt:
        # a second Ctrl-C (or no handler): wait for the batch in flight so the counts
        # are exact, unless interrupted again
        interrupted = True
        with contextlib.suppress(KeyboardInterrupt):
            settle()
    except rex.RedisError:
        # Redis failed part-way (connection lost, a permission): record what was done,
        # if anything was and the audit stream can still be written, then report
        partial = finish()
        if partial.changed and not dry_run:
            with contextlib.suppress(rex.RedisError):
                append_audit(client, policy, FlushResult(**{**partial.__dict__,
                                                            "interrupted": True}),
                             actor or current_actor(), wall_clock())
        raise
    finally:
        if worker is not None:
            worker.shutdown(wait=True)
    result = finish()
    if not dry_run and (result.matched or interrupted):
        try:
            audit_id = append_audit(client, policy, result, actor or current_actor(),
                                    wall_clock())
            result = FlushResult(**{**result.__dict__, "audit_id": audit_id})
        except rex.RedisError as exc:
            # the keys are flushed either way; say so rather than fail the whole run
            result = FlushResult(**{**result.__dict__, "audit_error": _first_line(exc)})
    if interrupted:
        verb = "softened" if soft else "removed"
        raise InterruptedWork(
            f"interrupted: {result.changed} of {result.matched} keys found so far {verb}",
            partial=result, hint="whatever was flushed is complete; rerun the same command to finish")
    return result


def _owned_batches(client: Any, policy: Policy, target: FlushTarget, tally: _Tally,
                   count: Callable[[], int]) -> Iterator[tuple[Any, list[bytes]]]:
    """``(node, keys)``: the target's own keys, one list per SCAN (COUNT from ``count()``).

    Every primary is scanned with the template's escaped glob (or the raw pattern) by
    ``_ScanAhead``, so the next SCAN is on the wire while this thread filters the last
    reply; ``_selector`` keeps exactly the target's keys and counts in ``tally.other``
    those the exact regex accepts but another namespace or cachectl owns. COUNT follows
    the latency governor: a SCAN's cost grows with COUNT, so when the server's latency
    rises each SCAN gets shorter too.
    """
    select = _selector(policy, target)
    if target.kind == "key":
        assert target.key is not None
        own, other = select([target.key])
        tally.other += other
        yield client, own  # the client routes a single key itself (cluster too)
        return
    with contextlib.closing(_ScanAhead(_primaries(client), _glob(policy, target), count)) as scans:
        for node, keys in scans:
            own, other = select(keys)
            tally.other += other
            if own:
                yield node, own


class _ScanAhead:
    """Iterate ``(node, keys)`` SCAN replies (every node, full walk) read by a thread.

    A SCAN's next call needs the last reply's cursor, so one connection alone leaves
    the server idle while the client parses and filters. Here a thread issues the
    SCANs back to back, at most ``depth`` replies ahead of the consumer, which the
    bounded queue enforces. Reading is harmless: keys a SCAN returns are only acted
    on after the consumer has them. Errors reach the consumer in order; ``close()``
    stops the thread after its SCAN in flight.
    """

    def __init__(self, nodes: Sequence[Any], match: str, count: Callable[[], int],
                 depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(list(nodes), match, count),
                                        name="cachectl-flush-scan", daemon=True)
        self._thread.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, nodes: list[Any], match: str, count: Callable[[], int]) -> None:
        last: tuple[str, Any] = ("end", None)
        try:
            for node in nodes:
                cursor = 0
                while not self._stop.is_set():
                    cursor, keys = node.scan(cursor=cursor, match=match, count=count())
                    if keys and not self._put(("keys", (node, keys))):
                        return
                    if cursor == 0:
                        break
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            last = ("error", exc)
        self._put(last)

    def __iter__(self) -> Iterator[tuple[Any, list[bytes]]]:
        while True:
            try:
                kind, value = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self._thread.is_alive():
                    continue
                raise RuntimeError("the SCAN thread ended without a word") from None
            if kind == "keys":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _chunks(batches: Iterator[tuple[Any, list[bytes]]],
            size: Callable[[], int]) -> Iterator[tuple[Any, list[bytes]]]:
    """Regroup per-SCAN key lists into batches of ``size()`` keys (read before each one).

    A sparse namespace yields a few keys per SCAN; gathering them keeps every UNLINK
    full. A node's last batch may be smaller: batches never mix nodes.
    """
    pending: list[bytes] = []
    current: Any = None
    for node, keys in batches:
        if pending and node is not current:
            yield current, pending
            pending = []
        current = node
        pending.extend(keys)
        while len(pending) >= size():
            n = size()
            chunk, pending = pending[:n], pending[n:]
            yield node, chunk
    if pending:
        yield current, pending


def describe(targets: Sequence[FlushTarget]) -> str:
    """The operator's selection in words: ``tag catalog (product, price)``."""
    parts: dict[str, list[str]] = {}
    for t in targets:
        parts.setdefault(t.selector, []).append(t.name)
    return "; ".join(sel if sel.startswith(("namespace ", "key ", "pattern "))
                     else f"{sel} ({', '.join(names)})" for sel, names in parts.items())


# --------------------------------------------------------------------------- audit


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def audit_key(policy: Policy) -> str:
    """The capped stream of flush runs: ``<internal_prefix>:audit``."""
    return f"{policy.internal_prefix}:audit"


@dataclass(frozen=True)
class AuditEntry:
    """One destructive flush run, as recorded in the audit stream."""

    id: str
    time: str  # ISO 8601, UTC
    user: str
    host: str
    what: str
    mode: str
    matched: int
    changed: int
    skipped: int
    seconds: float
    interrupted: bool


def append_audit(client: Any, policy: Policy, result: FlushResult, actor: Actor,
                 now_s: float) -> str:
    """XADD one entry for ``result`` to the audit stream (MAXLEN ~ 10000); return its id."""
    fields = {
        "time": datetime.fromtimestamp(now_s, UTC).isoformat(timespec="seconds"),
        "user": actor.user,
        "host": actor.host,
        "what": result.what,
        "mode": result.mode.value,
        "matched": str(result.matched),
        "changed": str(result.changed),
        "skipped": str(result.skipped),
        "seconds": f"{result.seconds:.3f}",
        "interrupted": "1" if result.interrupted else "0",
    }
    entry_id = client.xadd(audit_key(policy), fields, maxlen=AUDIT_MAXLEN, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def read_history(client: Any, policy: Policy, limit: int = 20) -> tuple[AuditEntry, ...]:
    """The latest ``limit`` audit entries, newest first."""
    if limit < 1:
        raise UsageError(f"--limit {limit} must be at least 1")
    rows = client.xrevrange(audit_key(policy), "+", "-", count=limit)
    entries = []
    for raw_id, raw in rows:
        f = {k.decode(): v.decode("utf-8", "backslashreplace") for k, v in raw.items()}
        entries.append(AuditEntry(
            raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id),
            f.get("time", ""), f.get("user", "?"), f.get("host", "?"), f.get("what", ""),
            f.get("mode", "?"), _int(f.get("matched")), _int(f.get("changed")),
            _int(f.get("skipped")), _float(f.get("seconds")), f.get("interrupted") == "1"))
    return tuple(entries)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _float(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0
