"""Turn a trace into curves and recommendations per namespace (``model_trace``).

Sampling (SHARDS, Waldspurger et al. FAST 2015): a key is in the sample when the hash of its key
falls under the rate, so every access of a sampled key is kept and reuse survives; the memory
sizes are scaled by the rate (a miniature cache, ATC 2017) and each rate is corrected as
SHARDS-adj does, by dividing the sampled misses by the *expected* number of sampled requests
(requests × rate) instead of the number drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cachectl.errors import UsageError, install_extra_hint
from cachectl.model.results import (
    HotKey,
    MemoryEvaluation,
    MemoryPoint,
    ModelReport,
    NamespaceModel,
    Recommendation,
    TtlPoint,
)
from cachectl.model.trace import Trace
from cachectl.policy.model import Policy
from cachectl.progress import ProgressCallback, no_progress

# used_memory per key beyond the value, measured on Redis 7.0.15 with 1 KiB strings (key, robj,
# dict entry, allocator rounding): see docs/model.md; --key-overhead or --url replaces it
DEFAULT_KEY_OVERHEAD = 225
DEFAULT_KEY_OVERHEAD_SOURCE = "default: used_memory per 1 KiB string key on Redis 7.0.15 (docs/model.md)"
SAMPLE_ABOVE_EVENTS = 2_000_000  # larger traces are sampled unless exact
SAMPLE_TARGET_EVENTS = 1_000_000
MIN_SAMPLE_RATE = 0.01
MEMORY_POINTS = 100
MIN_MINIATURE_KEYS = 100
REDIS_POINTS = 16
HOT_KEYS = 10
WEEK_S = 7 * 86400


# a log grid from 1 s to 7 days in steps an operator would write (20 points)
TTL_GRID_S = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 43200,
              86400, 3 * 86400, WEEK_S)


def default_ttl_grid() -> list[float]:
    """The default TTL grid in seconds: 1 s to 7 days, roughly logarithmic."""
    return [float(s) for s in TTL_GRID_S]


@dataclass(frozen=True)
class ModelOptions:
    ttls_s: tuple[float, ...] = ()  # empty: default_ttl_grid() plus each namespace's own TTL
    memory_bytes: tuple[int, ...] = ()  # --memory sizes to evaluate
    exact: bool = False
    sample_rate: float | None = None  # None: 1 below SAMPLE_ABOVE_EVENTS, else automatic
    key_overhead: int = DEFAULT_KEY_OVERHEAD
    key_overhead_source: str = DEFAULT_KEY_OVERHEAD_SOURCE
    redis_points: int = REDIS_POINTS  # grid sizes simulated with Redis's eviction, besides memory_bytes
    lfu: bool = False  # also simulate allkeys-lfu
    samples: int = 5  # maxmemory-samples
    lfu_log_factor: int = 10
    lfu_decay_minutes: int = 1
    seed: int = 1
    # (namespace, plain/stored ratio, min_bytes): values of min_bytes or more are modelled at
    # their compressed size (inspect --compression's recommendation, docs/compression.md)
    compression: tuple[tuple[str, float, int], ...] = ()


def kernels() -> Any:
    """The compiled loops; UsageError naming the extra when numba or numpy is missing."""
    try:
        from cachectl.model import kernels as k
    except ModuleNotFoundError as exc:
        raise UsageError(f"cachectl model needs {exc.name}, which is not installed",
                         hint=install_extra_hint("model")) from None
    return k


def choose_sample_rate(events: int, options: ModelOptions) -> float:
    if options.exact:
        return 1.0
    if options.sample_rate is not None:
        if not 0 < options.sample_rate <= 1:
            raise UsageError(f"sample rate {options.sample_rate:g} is not in (0, 1]", hint="e.g. 1%")
        return options.sample_rate
    if events <= SAMPLE_ABOVE_EVENTS:
        return 1.0
    return max(MIN_SAMPLE_RATE, SAMPLE_TARGET_EVENTS / events)


def sample_mask(key_hash: Any, rate: float) -> Any:
    """Which records SHARDS keeps at ``rate``: those whose key hash falls under it."""
    import numpy as np

    if rate >= 1:
        return np.ones(key_hash.shape, dtype=bool)
    k = kernels()
    points = _vector_sample_points(key_hash, k)
    return points < np.uint64(int(rate * (1 << 24)))


def _vector_sample_points(key_hash: Any, k: Any) -> Any:
    import numpy as np

    x = key_hash.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x >> np.uint64(40)


def keeps_key(rate: float) -> Callable[[int], bool]:
    """The same test as ``sample_mask`` for one hash (to keep the text of sampled keys)."""
    if rate >= 1:
        return lambda h: True
    limit = int(rate * (1 << 24))
    mask = (1 << 64) - 1

    def keep(h: int) -> bool:
        x = h
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        x = x ^ (x >> 31)
        return (x >> 40) < limit

    return keep


@dataclass
class _Columns:
    """The sampled trace as the kernels take it."""

    kid: Any
    t_ms: Any
    vsize: Any
    ns: Any
    khash: Any
    t_end_ms: int


def _columns(trace: Trace, mask: Any | None) -> _Columns:
    """The kernels' columns of the records ``mask`` keeps (every record, without copies, for None)."""
    import numpy as np

    def pick(column: Any) -> Any:
        return column if mask is None else column[mask]

    kid, khash = kernels().dense_ids(pick(trace.key_hash).astype(np.uint64, copy=False))
    t0 = float(trace.time_s[0]) if len(trace) else 0.0
    times = pick(trace.time_s)
    t_ms = np.empty(times.shape, np.int64)
    for start in range(0, len(times), 1 << 20):  # by chunks: a 5M-event trace holds 40 MB a column
        t_ms[start:start + (1 << 20)] = np.round((times[start:start + (1 << 20)] - t0) * 1000)
    t_end = round((float(trace.time_s[-1]) - t0) * 1000) if len(trace) else 0
    return _Columns(kid, t_ms, pick(trace.size).astype(np.int64, copy=False),
                    pick(trace.ns).astype(np.int32, copy=False), khash, t_end)


def compressed_sizes(vsize: Any, ns: Any, names: Sequence[str],
                     compression: Sequence[tuple[str, float, int]]) -> Any:
    """The value sizes as stored: in each namespace of ``compression``, a value of its
    min_bytes or more divided by its ratio (rounded up); the others as they are."""
    import numpy as np

    out = vsize.copy()
    for name, ratio, min_bytes in compression:
        if name in names and ratio > 0:
            sel = (ns == names.index(name)) & (vsize >= min_bytes)
            out[sel] = np.ceil(vsize[sel] / ratio).astype(np.int64)
    return out


def _timing(policy: Policy, names: Sequence[str], ttl_override_ms: dict[str, int] | None = None
            ) -> tuple[Any, Any, Any, Any]:
    import numpy as np

    spaces = [policy.namespaces[n] for n in names]
    ttl = [(ttl_override_ms or {}).get(ns.name, ns.ttl_ms) for ns in spaces]
    return (np.array(ttl, dtype=np.int64), np.array([ns.stale_ms for ns in spaces], dtype=np.int64),
            np.array([ns.grace_ms for ns in spaces], dtype=np.int64),
            np.array([ns.jitter for ns in spaces], dtype=np.float64))


def _rate(sampled_requests: int, sampled_hits: int, expected: float) -> float:
    """SHARDS-adj: hit rate = 1 - sampled misses / expected sampled requests, clipped to [0, 1]."""
    if expected <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - (sampled_requests - sampled_hits) / expected))


def memory_grid(working_set: int, extra: Sequence[int] = (), points: int = MEMORY_POINTS,
                smallest: int = 0) -> list[int]:
    """Cache sizes: ``points`` sizes log-spaced from ``smallest`` (at least 1/1000 of it) up to a bit
    past the working set, plus ``extra``."""
    top = max(1, int(working_set * 1.05))
    low = min(top, max(1, top // 1000, smallest))
    grid = {max(1, round(low * (top / low) ** (i / (points - 1)))) for i in range(points)}
    return sorted(grid | {int(x) for x in extra if x > 0})


def model_trace(trace: Trace, policy: Policy, options: ModelOptions = ModelOptions(),
                on_progress: ProgressCallback = no_progress) -> ModelReport:
    """Model ``trace`` under ``policy``: TTL curve, memory curve, recommendation and hot keys.

    Raises UsageError when the trace is empty or numba/numpy are missing.
    """
    import numpy as np

    k = kernels()
    if len(trace) == 0:
        raise UsageError("the trace has no records")
    names = trace.namespaces
    n_ns = len(names)
    # a trace captured at a rate (the library's) is a sample already: the rate applies on top
    # of it (the test is nested) and counts are scaled back by it
    captured = trace.sample_rate
    chosen = choose_sample_rate(len(trace), options)
    rate = min(chosen, captured) if options.sample_rate is not None else chosen * captured
    mask = sample_mask(trace.key_hash, rate)
    cols = _columns(trace, mask)
    if options.compression:
        cols.vsize = compressed_sizes(cols.vsize, cols.ns, names, options.compression)
    duration_s = max(float(trace.time_s[-1] - trace.time_s[0]), 1e-3)
    overhead = options.key_overhead
    in_trace = np.bincount(trace.ns, minlength=n_ns)
    requests = in_trace / captured
    sampled = np.bincount(cols.ns, minlength=n_ns)
    request_bytes = np.bincount(trace.ns, weights=trace.size, minlength=n_ns) / captured
    # the byte hit rate is a share of the bytes as stored: compressed ones where they would be
    stored_bytes = request_bytes if not options.compression else np.bincount(
        trace.ns, weights=compressed_sizes(trace.size, trace.ns, names, options.compression),
        minlength=n_ns) / captured
    sampled_bytes = np.bincount(cols.ns, weights=cols.vsize, minlength=n_ns)
    present = [g for g in range(n_ns) if requests[g] > 0]

    # TTL curves, per namespace, over every event: without a memory limit keys do not interact,
    # so each TTL is one cheap pass, and sampling would only add the variance of the hottest keys
    # (a hot key left out of the sample takes its misses at short TTLs with it)
    all_events = cols if rate >= 1 else _columns(trace, None)
    grid_base = list(options.ttls_s) or default_ttl_grid()
    ttl_curves: dict[int, list[TtlPoint]] = {}
    total_steps = sum(len(set(grid_base) | {policy.namespaces[names[g]].ttl_ms / 1000}) for g in present)
    step = 0
    on_progress("modelling", 0, total_steps)
    for g in present:
        ns = policy.namespaces[names[g]]
        if len(present) == 1:  # no copies of a one-namespace trace
            inverse, khash_g, t_ms, vsize = (all_events.kid, all_events.khash, all_events.t_ms,
                                             all_events.vsize)
        else:
            sel = all_events.ns == g
            inverse, kid_g = k.dense_ids(all_events.kid[sel].astype(np.uint64))
            khash_g = all_events.khash[kid_g.astype(np.int64)]
            t_ms, vsize = all_events.t_ms[sel], all_events.vsize[sel]
        grid = sorted(set(grid_base) | ({ns.ttl_ms / 1000} if not options.ttls_s else set()))
        points = []
        n = int(in_trace[g])
        for ttl_s in grid:
            fresh, stale, loads, resident = k.ttl_curve(
                inverse.astype(np.int64, copy=False), t_ms, vsize, khash_g,
                np.int64(round(ttl_s * 1000)), np.int64(ns.stale_ms), np.int64(ns.grace_ms),
                float(ns.jitter), np.int64(overhead), np.int64(all_events.t_end_ms))
            points.append(TtlPoint(
                ttl_s=ttl_s,
                hit_rate=(fresh + stale) / n,
                fresh_rate=fresh / n,
                stale_rate=stale / n,
                load_rate_per_s=loads / duration_s / captured,
                resident_bytes=resident / (duration_s * 1000) / captured))
            step += 1
            on_progress("modelling", step, total_steps)
        ttl_curves[g] = points
    hot = _hot_keys(trace, all_events, captured)  # counted over every event
    del all_events

    # the recommended TTL per namespace; the memory curve is simulated with it
    chosen_ttl_ms: dict[str, int] = {}
    recommended: dict[int, TtlPoint | None] = {}
    for g in present:
        ns = policy.namespaces[names[g]]
        # what stats judges: hit rate above the threshold, stale share of hits within max_stale_ratio
        meets = [p for p in ttl_curves[g] if p.hit_rate > ns.hit_rate
                 and p.stale_rate <= policy.thresholds.max_stale_ratio * p.hit_rate]
        recommended[g] = meets[0] if meets else None
        chosen_ttl_ms[ns.name] = round(meets[0].ttl_s * 1000) if meets else ns.ttl_ms

    # memory curve: the whole policy in one cache, exact LRU at every size in one pass
    largest = np.zeros(len(cols.khash), dtype=np.int64)
    np.maximum.at(largest, cols.kid, cols.vsize)
    working_set = int((largest.sum() + overhead * len(cols.khash)) / rate)
    # a miniature cache of a handful of keys says little: sampled curves start where it holds
    # MIN_MINIATURE_KEYS keys of the average footprint (--memory sizes are evaluated regardless)
    smallest = 0 if rate >= 1 else MIN_MINIATURE_KEYS * working_set // max(1, len(cols.khash))
    sizes = memory_grid(working_set, options.memory_bytes, smallest=smallest)
    caps = np.array([int(s * rate) for s in sizes], dtype=np.int64)
    ttl, stale, grace, jitter = _timing(policy, names, chosen_ttl_ms)
    hits, byte_hits = k.lru_curve(cols.kid, cols.t_ms, cols.vsize, cols.ns, cols.khash, ttl, stale,
                                  grace, jitter, np.int64(overhead), caps, n_ns)

    # Redis's sampled eviction at fewer sizes (one simulation per size)
    grid_points = set(sizes[:: max(1, len(sizes) // options.redis_points)]) if options.redis_points else set()
    redis_sizes = sorted(grid_points | set(options.memory_bytes))
    redis_lru: dict[int, Any] = {}
    redis_lfu: dict[int, Any] = {}
    for size in redis_sizes:
        for lfu, into in ((False, redis_lru), (True, redis_lfu)):
            if lfu and not options.lfu:
                continue
            h, _ = k.redis_curve(cols.kid, cols.t_ms, cols.vsize, cols.ns, cols.khash, ttl, stale,
                                 grace, jitter, np.int64(overhead), np.int64(int(size * rate)), n_ns,
                                 lfu, options.samples, float(options.lfu_log_factor),
                                 np.int64(options.lfu_decay_minutes), options.seed)
            into[size] = h
        on_progress("modelling", total_steps, total_steps)

    namespaces = []
    for g in present:
        ns = policy.namespaces[names[g]]
        expected = requests[g] * rate
        curve = []
        for s, size in enumerate(sizes):
            curve.append(MemoryPoint(
                bytes=size,
                hit_rate=_rate(int(sampled[g]), int(hits[g, s]), expected),
                byte_hit_rate=min(1.0, max(0.0, 1 - (sampled_bytes[g] - byte_hits[g, s])
                                           / (stored_bytes[g] * rate))) if stored_bytes[g] else 0.0,
                redis_lru_hit_rate=_rate(int(sampled[g]), int(redis_lru[size][g]), expected)
                if size in redis_lru else None,
                redis_lfu_hit_rate=_rate(int(sampled[g]), int(redis_lfu[size][g]), expected)
                if size in redis_lfu else None))
        best = max(ttl_curves[g], key=lambda p: (p.hit_rate, -p.ttl_s))
        rec = recommended[g]
        min_memory = next((p.bytes for p in curve if p.redis_lru_hit_rate is not None
                           and p.redis_lru_hit_rate > ns.hit_rate), None)
        namespaces.append(NamespaceModel(
            namespace=ns.name,
            threshold=ns.hit_rate,
            requests=round(requests[g]),
            sample_rate=rate,
            sampled_requests=int(sampled[g]),
            keys=len(np.unique(cols.kid[cols.ns == g])),
            request_bytes=int(request_bytes[g]),
            policy_ttl_s=ns.ttl_ms / 1000,
            memory_curve_ttl_s=chosen_ttl_ms[ns.name] / 1000,
            ttl_curve=tuple(ttl_curves[g]),
            memory_curve=tuple(curve),
            recommend=Recommendation(
                ttl_s=rec.ttl_s if rec else None,
                hit_rate=rec.hit_rate if rec else None,
                load_rate_per_s=rec.load_rate_per_s if rec else None,
                memory_bytes=math.ceil(rec.resident_bytes / policy.thresholds.memory_used_ratio)
                if rec else None,
                min_memory_bytes=min_memory if rec else None,
                best_ttl_s=best.ttl_s,
                best_hit_rate=best.hit_rate),
            hot_keys=hot.get(g, ())))

    every = all(m.recommend.ttl_s is not None for m in namespaces)
    maxmemory = sum(m.recommend.memory_bytes or 0 for m in namespaces) if every else None
    evaluations = []
    for size in options.memory_bytes:
        s = sizes.index(size)
        exact_rates = {m.namespace: m.memory_curve[s].hit_rate for m in namespaces}
        lru_rates = {m.namespace: m.memory_curve[s].redis_lru_hit_rate or 0.0 for m in namespaces}
        evaluations.append(MemoryEvaluation(
            bytes=size, hit_rate=exact_rates, redis_lru_hit_rate=lru_rates,
            meets_thresholds=all(lru_rates[m.namespace] > m.threshold for m in namespaces)))
    return ModelReport(
        sources=trace.sources, requests=round(len(trace) / captured), duration_s=duration_s, sample_rate=rate,
        sampled=rate < 1, key_overhead_bytes=overhead, key_overhead_source=options.key_overhead_source,
        namespaces=tuple(namespaces), maxmemory_bytes=maxmemory,
        memory_used_ratio=policy.thresholds.memory_used_ratio, meets_thresholds=every,
        evaluations=tuple(evaluations))


def _hot_keys(trace: Trace, events: _Columns, captured: float) -> dict[int, tuple[HotKey, ...]]:
    """Each namespace's most requested keys, counted over every event of the trace (not the
    sample). Per-key arrays only: a 5M-event trace's columns are not copied again."""
    import numpy as np

    counts = np.bincount(events.kid, minlength=len(events.khash))
    key_ns = np.zeros(len(events.khash), dtype=np.int32)
    key_ns[events.kid] = events.ns  # a key's namespace (its template's; the last event's)
    hot: dict[int, tuple[HotKey, ...]] = {}
    for g in np.unique(key_ns):
        mine = np.flatnonzero(key_ns == g)
        top = mine[np.argsort(counts[mine], kind="stable")[::-1][:HOT_KEYS]]
        hot[int(g)] = tuple(
            HotKey(key_hash=f"{int(events.khash[i]):016x}", key=trace.keys.get(int(events.khash[i])),
                   requests=round(int(counts[i]) / captured))
            for i in top if counts[i] > 0)
    return hot
