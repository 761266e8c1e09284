"""The result objects of ``cachectl stats``: plain frozen records the renderers turn into output.

Units are in the names: ``*_bytes``, ``*_ms``, ``*_s``, ``*_per_s``; ratios are 0..1.
A figure that could not be measured (no traffic, a server that does not report it)
is ``None``, never a made-up zero.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class Status(enum.Enum):
    """The verdict on one figure; ordered from best to worst by ``rank``."""

    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    NO_DATA = "no_data"
    LOW_TRAFFIC = "too_little_traffic"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.PASS: 0, Status.NO_DATA: 1, Status.LOW_TRAFFIC: 2, Status.WARN: 3, Status.FAIL: 4}


def worst(statuses: Any) -> Status:
    """The worst of ``statuses`` (PASS when there are none)."""
    found = list(statuses)
    return max(found, key=lambda s: s.rank) if found else Status.PASS


@dataclass(frozen=True)
class Check:
    """One figure next to its threshold, with a verdict.

    ``check`` is a stable kebab-free name (``hit_rate``, ``memory_used_ratio``…);
    ``comparison`` says how value and threshold relate for a pass (``>``, ``<``, ``<=``).
    ``node`` or ``namespace`` names the subject; both None for server-wide checks.
    """

    check: str
    status: Status
    message: str
    value: float | str | None = None
    threshold: float | None = None
    comparison: str | None = None
    unit: str = ""
    node: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class ReadLatency:
    """Server-side read latency of GET-like commands (execution time inside Redis).

    ``source`` is ``latency_histogram`` (Redis >= 7: p50/p99 interpolated inside the
    power-of-two buckets) or ``commandstats`` (older: a mean only). ``basis`` is
    ``interval`` when computed from the two snapshots' difference, ``since_restart``
    when the interval had no such calls.
    """

    source: str
    basis: str
    calls: int
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    commands: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeStats:
    """One primary (or, for ``total``, all of them) over the sampled interval."""

    node: str
    redis_version: str | None
    uptime_s: int | None
    interval_s: float
    hits: int
    misses: int
    hit_rate: float | None
    hits_since_restart: int
    misses_since_restart: int
    hit_rate_since_restart: float | None
    ops_per_s: float
    commands: int
    used_memory_bytes: int
    peak_memory_bytes: int
    maxmemory_bytes: int
    system_memory_bytes: int | None
    memory_limit_bytes: int | None
    memory_limit_source: str | None
    used_memory_ratio: float | None
    peak_memory_ratio: float | None
    eviction_policy: str | None
    evicted_keys: int
    evicted_keys_per_s: float
    expired_keys: int
    expired_keys_per_s: float
    fragmentation_ratio: float | None
    rss_bytes: int | None
    connected_clients: int
    blocked_clients: int
    maxclients: int | None
    keys: int
    keys_with_ttl: int
    latency: ReadLatency | None
    evicted_keys_since_restart: int = 0
    expired_keys_since_restart: int = 0
    read_histogram: ReadHistogram | None = None
    # "redis" or "valkey", and its own version: Valkey reports redis_version 7.2.4 for
    # compatibility and its real one as valkey_version
    engine: str | None = None
    engine_version: str | None = None


@dataclass(frozen=True)
class ReadHistogram:
    """GET-like calls since the server started, as a cumulative histogram (Redis >= 7).

    ``buckets`` pairs each upper bound (microseconds, powers of two) with the calls at or
    below it; ``sum_usec`` is their total time from INFO commandstats (None without it).
    """

    calls: int
    sum_usec: int | None
    buckets: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class KeySample:
    """A namespace's key count and memory, from a sampled (or, on small servers, full) SCAN.

    ``exact`` when every key was scanned; otherwise ``keys`` is an estimate with a 95 %
    margin of ``keys_margin`` and ``memory_bytes`` is the sampled mean times the estimate.
    """

    keys: int
    keys_margin: int
    memory_bytes: int | None
    mean_key_bytes: float | None
    sampled_keys: int
    exact: bool


@dataclass(frozen=True)
class ModelHint:
    """What ``cachectl model`` recommends for a namespace, from the trace the library captured.

    ``ttl_s``, ``hit_rate``, ``load_rate_per_s`` and ``memory_bytes`` are the smallest TTL
    that meets ``threshold``, its hit rate, origin loads per second and maxmemory share; all
    None when no TTL meets it (then ``best_ttl_s`` and ``best_hit_rate`` say how close the
    best one comes). ``events`` are the namespace's events in the trace, captured at
    ``sample_rate``; ``trace_dropped`` the events of the namespace the library dropped since
    the trace's first event (a trace with drops under-represents the load).
    """

    events: int
    sample_rate: float
    threshold: float
    ttl_s: float | None
    hit_rate: float | None
    load_rate_per_s: float | None
    memory_bytes: int | None
    best_ttl_s: float
    best_hit_rate: float
    trace_dropped: int = 0


@dataclass(frozen=True)
class NamespaceStats:
    """One namespace over the counter window, judged against its own hit-rate threshold."""

    namespace: str
    in_policy: bool
    critical: bool
    hot: bool
    hit_rate_threshold: float
    fresh_hits: int
    stale_hits: int
    fail_safe_hits: int
    misses: int
    refreshes: int
    refresh_errors: int
    redis_errors: int
    loads: int
    hits: int
    requests: int
    hit_rate: float | None
    stale_ratio: float | None
    origin_calls_saved: int
    mean_load_ms: float | None
    status: Status
    keys: KeySample | None = None
    # the running totals (every minute the library counted, not just the window): what the
    # Prometheus counters expose; names as in cachectl.counter_format.COUNTER_NAMES
    counter_totals: dict[str, int] = field(default_factory=dict)
    # the last cachectl verify result recorded for it (cachectl.verify.read_records), or None
    verify: dict[str, Any] | None = None
    # access-trace events of the namespace the library dropped in the window (buffer full,
    # Redis down): the captured trace under-represents the load by that much
    trace_dropped: int = 0
    # under a failing hit-rate verdict, what the model of the captured trace recommends
    # (cachectl.stats.recommend.with_model_hints); None otherwise, or without a trace
    model_hint: ModelHint | None = None


@dataclass(frozen=True)
class ScanSummary:
    """How the per-namespace key figures were obtained."""

    enabled: bool
    exact: bool = False
    scanned_keys: int = 0
    total_keys: int = 0
    unmatched_keys: int = 0
    duration_ms: float = 0.0


@dataclass(frozen=True)
class StatsReport:
    """Everything ``cachectl stats`` reports; ``status`` is the worst verdict."""

    generated_at: str
    target: str
    interval_s: float
    window_s: int
    window_minutes: tuple[int, int]
    nodes: tuple[NodeStats, ...]
    total: NodeStats
    namespaces: tuple[NamespaceStats, ...]
    checks: tuple[Check, ...]
    scan: ScanSummary
    status: Status
    skipped_counter_fields: int = 0  # malformed counter fields left out (not integers, not UTF-8)
    schema_version: int = SCHEMA_VERSION

    def failed(self, strict: bool = False) -> bool:
        """Whether the report should exit 1: any FAIL, or any WARN under ``strict``."""
        bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
        return any(c.status in bad for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape (docs/stats.md, docs/stats.schema.json), plain values only."""
        doc: dict[str, Any] = _plain({
            "schema_version": self.schema_version,
            "generated_at": self.generated_at,
            "target": self.target,
            "status": self.status,
            "interval_s": self.interval_s,
            "window": {"seconds": self.window_s, "first_minute": self.window_minutes[0],
                       "last_minute": self.window_minutes[1]},
            "server": {"nodes": list(self.nodes), "total": self.total},
            "namespaces": list(self.namespaces),
            "scan": self.scan,
            "checks": list(self.checks),
            "skipped_counter_fields": self.skipped_counter_fields,
        })
        return doc


def _plain(obj: Any) -> Any:
    """Dataclasses, enums and tuples -> JSON values (no Rich needed to print ``--json``)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
