"""The model's result types: curves, recommendations and hot keys per namespace (pure data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TtlPoint:
    """A cache-aside cache without a memory limit, with this TTL and the policy's stale window."""

    ttl_s: float
    hit_rate: float  # fresh + stale hits / requests (what stats calls the hit rate, fail-safe aside)
    fresh_rate: float
    stale_rate: float
    load_rate_per_s: float  # origin loads: misses and background refreshes
    resident_bytes: float  # time-averaged bytes alive, values plus the per-key overhead


@dataclass(frozen=True)
class MemoryPoint:
    """Hit rates of this namespace when the whole policy shares one cache of ``bytes``."""

    bytes: int
    hit_rate: float  # exact LRU
    byte_hit_rate: float
    redis_lru_hit_rate: float | None = None  # Redis's sampled allkeys-lru, where simulated
    redis_lfu_hit_rate: float | None = None


@dataclass(frozen=True)
class HotKey:
    key_hash: str  # 16 hex digits
    key: str | None  # the key text, when the trace had it
    requests: int  # estimated over the whole trace (sampled count / sample rate)


@dataclass(frozen=True)
class Recommendation:
    """The smallest TTL that meets the threshold, what it costs, or the best one when none does."""

    ttl_s: float | None
    hit_rate: float | None
    load_rate_per_s: float | None
    memory_bytes: int | None  # this namespace's share of maxmemory: resident / memory_used_ratio
    min_memory_bytes: int | None  # smallest shared cache (Redis LRU) where this namespace meets it
    best_ttl_s: float
    best_hit_rate: float


@dataclass(frozen=True)
class NamespaceModel:
    namespace: str
    threshold: float
    requests: int
    sample_rate: float  # share of keys simulated (SHARDS); 1.0 when exact
    sampled_requests: int
    keys: int  # distinct keys seen (in the sample)
    request_bytes: int
    policy_ttl_s: float
    memory_curve_ttl_s: float  # the TTL the memory curve was simulated with
    ttl_curve: tuple[TtlPoint, ...]
    memory_curve: tuple[MemoryPoint, ...]
    recommend: Recommendation
    hot_keys: tuple[HotKey, ...]
    # a trace the library captured (--url): its events of this namespace the library dropped
    # since the trace's first event (buffer full, Redis down); None for a trace file
    trace_dropped: int | None = None


@dataclass(frozen=True)
class MemoryEvaluation:
    """One ``--memory`` size: every namespace's hit rate there."""

    bytes: int
    hit_rate: dict[str, float]  # exact LRU
    redis_lru_hit_rate: dict[str, float]
    meets_thresholds: bool


@dataclass(frozen=True)
class ModelReport:
    sources: tuple[str, ...]
    requests: int
    duration_s: float
    sample_rate: float  # 1.0: every event (exact)
    sampled: bool
    key_overhead_bytes: int
    key_overhead_source: str
    namespaces: tuple[NamespaceModel, ...]
    maxmemory_bytes: int | None  # holds every namespace at its recommended TTL under memory_used_ratio
    memory_used_ratio: float
    meets_thresholds: bool  # every namespace has a TTL that meets its threshold
    evaluations: tuple[MemoryEvaluation, ...] = ()
    # a trace the library captured (--url): the events it dropped since the trace's first event,
    # every namespace summed (the trace under-represents the load by as much); None for a file
    trace_dropped: int | None = None
