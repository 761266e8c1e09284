"""An independent brute-force cache simulator and trace generators, to check `cachectl model`.

The simulator is written the plain way, one cache size at a time: an ordered dict in recency
order, a per-key freshness timeline (fresh, stale, fail-safe, gone) and a heap of expiries. It
shares nothing with cachectl/model/kernels.py except the jitter draw (so both draw the same TTL
for the same load).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FRESH, STALE, FAIL_SAFE, GONE = "fresh", "stale", "fail_safe", "gone"


@dataclass(frozen=True)
class Timing:
    ttl_ms: int  # <= 0: never expires
    stale_ms: int = 0
    grace_ms: int = 0
    jitter: float = 0.0


@dataclass(frozen=True)
class Event:
    t_ms: int
    key: int  # 64-bit key hash
    size: int
    ns: int = 0


def jittered(timing: Timing, key: int, t_ms: int) -> int:
    from cachectl.model.kernels import jittered_ttl_ms

    return int(jittered_ttl_ms(np.int64(timing.ttl_ms), timing.jitter, np.uint64(key), np.int64(t_ms)))


def timeline(events: Sequence[Event], timings: Sequence[Timing]) -> list[tuple[str, int]]:
    """Per event: its band on the key's own timeline, and the key's hard expiry after the event."""
    ends: dict[int, tuple[int, int, int]] = {}
    out = []
    for e in events:
        tm = timings[e.ns]
        end = ends.get(e.key)
        if end is None or e.t_ms >= end[2]:
            band = GONE
        elif e.t_ms < end[0]:
            band = FRESH
        elif e.t_ms < end[1]:
            band = STALE
        else:
            band = FAIL_SAFE
        if band != FRESH:
            if tm.ttl_ms <= 0:
                end = (2**62, 2**62, 2**62)
            else:
                fresh = e.t_ms + jittered(tm, e.key, e.t_ms)
                end = (fresh, fresh + tm.stale_ms, fresh + tm.grace_ms)
            ends[e.key] = end
        assert end is not None
        out.append((band, end[2]))
    return out


def lru_hits(events: Sequence[Event], timings: Sequence[Timing], cap: int, overhead: int = 0,
             n_ns: int = 1) -> tuple[list[int], list[int]]:
    """Hits and hit bytes per namespace of an LRU cache of ``cap`` bytes (one size, brute force).

    Expired keys leave the cache before the access that finds them expired; a miss inserts the
    key at the top, then the least recent keys go until the cache fits (a key larger than the
    cache ends up evicting everything, itself last, as Redis's maxmemory would).
    """
    bands = timeline(events, timings)
    cache: OrderedDict[int, int] = OrderedDict()
    hard: dict[int, int] = {}
    expiries: list[tuple[int, int]] = []
    used = 0
    hits = [0] * n_ns
    hit_bytes = [0] * n_ns
    for e, (band, hard_end) in zip(events, bands, strict=True):
        while expiries and expiries[0][0] <= e.t_ms:
            when, key = heapq.heappop(expiries)
            if hard.get(key) == when and key in cache:
                used -= cache.pop(key)
        size = e.size + overhead
        if e.key in cache:
            if band in (FRESH, STALE):
                hits[e.ns] += 1
                hit_bytes[e.ns] += e.size
            used -= cache.pop(e.key)
        cache[e.key] = size
        used += size
        if hard.get(e.key) != hard_end:
            hard[e.key] = hard_end
            heapq.heappush(expiries, (hard_end, e.key))
        while used > cap:
            _, gone = cache.popitem(last=False)
            used -= gone
    return hits, hit_bytes


def ttl_figures(events: Sequence[Event], timing: Timing, t_end_ms: int, overhead: int = 0
                ) -> tuple[int, int, int, float]:
    """Fresh hits, stale hits, loads and resident byte·ms of one namespace without a memory limit,
    walked key by key."""
    by_key: dict[int, list[Event]] = {}
    for e in events:
        by_key.setdefault(e.key, []).append(e)
    fresh = stale = loads = 0
    resident = 0.0
    for key, accesses in by_key.items():
        bands = timeline(accesses, [timing])
        for j, (e, (band, hard_end)) in enumerate(zip(accesses, bands, strict=True)):
            if band == FRESH:
                fresh += 1
            else:
                loads += 1
                stale += band == STALE
            until = accesses[j + 1].t_ms if j + 1 < len(accesses) else t_end_ms
            resident += (min(until, hard_end) - e.t_ms) * (e.size + overhead)
        del key
    return fresh, stale, loads, resident


# --------------------------------------------------------------------------- generators


def zipf_trace(n: int, keys: int, alpha: float = 0.9, *, seed: int = 1, rate_per_s: float = 1000.0,
               sizes: tuple[int, int] = (200, 2000), n_ns: int = 1) -> list[Event]:
    """Zipf(alpha) popularity over ``keys`` keys, Poisson arrivals, a fixed size per key."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, keys + 1, dtype=np.float64)
    p = ranks ** -alpha
    p /= p.sum()
    ids = rng.choice(keys, size=n, p=p)
    t = np.cumsum(rng.exponential(1000.0 / rate_per_s, size=n)).astype(np.int64)
    key_size = rng.integers(sizes[0], sizes[1] + 1, size=keys)
    hashes = _hashes(keys, seed)
    return [Event(int(t[i]), int(hashes[ids[i]]), int(key_size[ids[i]]), int(ids[i]) % n_ns)
            for i in range(n)]


def uniform_trace(n: int, keys: int, *, seed: int = 2, rate_per_s: float = 1000.0) -> list[Event]:
    return zipf_trace(n, keys, 0.0, seed=seed, rate_per_s=rate_per_s)


def scan_trace(n: int, keys: int, *, seed: int = 3) -> list[Event]:
    """A hot set read at random, interrupted by sequential scans over many cold keys."""
    rng = np.random.default_rng(seed)
    hashes = _hashes(keys, seed)
    out = []
    t = 0
    i = 0
    while len(out) < n:
        if (len(out) // 500) % 3 == 2:
            k = keys // 10 + (i % (keys - keys // 10))
            i += 1
        else:
            k = int(rng.integers(0, keys // 10))
        t += int(rng.integers(0, 5))
        out.append(Event(t, int(hashes[k]), 100 + k % 7 * 50))
    return out


def resizing_trace(n: int, keys: int, *, seed: int = 4, big: int = 0) -> list[Event]:
    """Objects whose size changes between accesses (grows and shrinks); with ``big``, a few objects
    of ``big`` bytes."""
    rng = np.random.default_rng(seed)
    hashes = _hashes(keys, seed)
    out = []
    t = 0
    for _ in range(n):
        k = int(min(keys - 1, rng.zipf(1.3) - 1))
        t += int(rng.integers(0, 20))
        size = big if big and k % 97 == 5 else int(rng.integers(50, 3000))
        out.append(Event(t, int(hashes[k]), size))
    return out


def _hashes(keys: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 1000).integers(0, 2**63, size=keys, dtype=np.int64).astype(np.uint64)


def columns(events: Sequence[Event]) -> dict[str, np.ndarray]:
    """The events as the kernels take them (compact ids in first-seen order do not matter)."""
    hashes = np.array([e.key for e in events], dtype=np.uint64)
    khash, kid = np.unique(hashes, return_inverse=True)
    return {
        "kid": kid.astype(np.int64),
        "t_ms": np.array([e.t_ms for e in events], dtype=np.int64),
        "vsize": np.array([e.size for e in events], dtype=np.int64),
        "ns": np.array([e.ns for e in events], dtype=np.int32),
        "khash": khash.astype(np.uint64),
    }
