"""The simulation loops, compiled with numba: exact LRU at many sizes in one pass, the TTL curve,
and Redis's sampled eviction (approximated LRU and LFU).

Inputs are columns of one trace: ``kid`` (compact key ids 0..K-1), ``t_ms`` (integer ms),
``vsize`` (value bytes), ``ns`` (namespace index); per key ``khash`` (64-bit hash); per namespace
``ttl_ms``, ``stale_ms``, ``grace_ms`` and ``jitter``. A key occupies ``vsize + overhead`` bytes;
the size of each access is the object's size from then on (a trace may change it).

The freshness timeline of a key follows docs/design.md: a load at t writes it fresh until
t + ttl·(1 ± jitter), stale for ``stale`` more, kept (fail-safe) until the grace ends, then gone.
A fresh or stale access is served from the cache (a stale one also refreshes it in the
background: a load); a fail-safe or gone access is a miss (a load). The jitter of a load is drawn
from a hash of the key and the load time, so every simulator draws the same one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

FRESH, STALE, FAIL_SAFE, GONE = 0, 1, 2, 3
NEVER = np.int64(2**62)
POOL_SIZE = 16  # EVPOOL_SIZE in Redis's evict.c
LFU_INIT_VAL = 5

def _compiled(function: Callable[..., Any]) -> Any:
    """``function`` compiled by numba, the machine code cached on disk when a folder can take it.

    The cache goes next to this file, else to the user's cache folder (NUMBA_CACHE_DIR overrides
    both); numba refuses ``cache=True`` when neither is writable (a read-only install run by a
    user without a home), so then the loops are compiled on every run instead.
    """
    try:
        return njit(cache=True)(function)
    except RuntimeError:  # "cannot cache function …: no locator available"
        return njit(function)


@_compiled
def _mix64(x: np.uint64) -> np.uint64:  # splitmix64's finaliser
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@_compiled
def sample_point(khash: np.uint64) -> np.uint64:
    """The key's place in [0, 2^24) for SHARDS sampling: kept at rate R when below R·2^24."""
    return np.uint64(_mix64(khash) >> np.uint64(40))


@_compiled
def dense_ids(values):  # type: ignore[no-untyped-def]
    """Compact ids for ``values`` (uint64): ``ids[i]`` indexes ``uniques``, in order of first
    appearance. One pass through a growing open-addressing table, where ``np.unique`` sorts: on
    5M values over 500k distinct ones it peaks at 200 MB, this at the ids plus a few MB."""
    n = values.shape[0]
    ids = np.empty(n, np.int64)
    cap = 1024
    table = np.full(cap, -1, np.int64)
    uniques = np.empty(cap // 2, np.uint64)
    count = 0
    for i in range(n):
        v = values[i]
        mask = np.uint64(cap - 1)
        slot = np.int64(_mix64(v) & mask)
        while table[slot] >= 0 and uniques[table[slot]] != v:
            slot = (slot + 1) & (cap - 1)
        if table[slot] >= 0:
            ids[i] = table[slot]
            continue
        if 2 * (count + 1) > cap:  # keep the table at most half full: grow, rehash, probe again
            cap *= 2
            mask = np.uint64(cap - 1)
            table = np.full(cap, -1, np.int64)
            grown = np.empty(cap // 2, np.uint64)
            grown[:count] = uniques[:count]
            uniques = grown
            for j in range(count):
                s = np.int64(_mix64(uniques[j]) & mask)
                while table[s] >= 0:
                    s = (s + 1) & (cap - 1)
                table[s] = j
            slot = np.int64(_mix64(v) & mask)
            while table[slot] >= 0:
                slot = (slot + 1) & (cap - 1)
        table[slot] = count
        uniques[count] = v
        ids[i] = count
        count += 1
    return ids, uniques[:count].copy()


@_compiled
def jittered_ttl_ms(ttl_ms: np.int64, jitter: float, khash: np.uint64, load_ms: np.int64) -> np.int64:
    """The fresh lifetime of one load: ttl·(1 ± jitter), drawn from the key and the load time."""
    if jitter <= 0.0:
        return ttl_ms
    u = float(_mix64(khash ^ (np.uint64(load_ms) * np.uint64(0x9E3779B97F4A7C15))) >> np.uint64(11)) \
        / 9007199254740992.0
    return max(np.int64(1), np.int64(round(ttl_ms * (1.0 + jitter * (2.0 * u - 1.0)))))


@_compiled
def _band(t: np.int64, loaded: bool, fresh_end: np.int64, stale_end: np.int64, hard_end: np.int64) -> int:
    if not loaded or t >= hard_end:
        return GONE
    if t < fresh_end:
        return FRESH
    if t < stale_end:
        return STALE
    return FAIL_SAFE


@_compiled
def _load(k, t, ttl_ms, stale_ms, grace_ms, jitter, khash, fresh_end, stale_end,  # type: ignore[no-untyped-def]
          hard_end):
    """Write key k's timeline for a load at t; True when it will expire (its hard end is due)."""
    if ttl_ms <= 0:
        fresh_end[k] = NEVER
        stale_end[k] = NEVER
        hard_end[k] = NEVER
        return False
    fresh_end[k] = t + jittered_ttl_ms(ttl_ms, jitter, khash[k], t)
    stale_end[k] = fresh_end[k] + stale_ms
    hard_end[k] = fresh_end[k] + grace_ms
    return True


@_compiled
def lru_curve(kid, t_ms, vsize, ns, khash, ttl_ms, stale_ms, grace_ms, jitter,  # type: ignore[no-untyped-def]
              overhead, caps, n_ns):
    """Exact LRU hits per (namespace, size) for every size of ``caps`` (ascending) in one pass.

    The cached set of an LRU cache is always a prefix of the recency stack of live keys, so each
    size is one boundary position ``b[s]`` in the trace: a key is cached at size s when its last
    access is at or after ``b[s]``, and boundaries never move back. An access updates the bytes
    above every boundary, then boundaries that overflow move forward over what they evict. Expiry
    (the hard end of a key's timeline, shared by all sizes) removes the key from every size that
    holds it before the next access, so expired bytes are freed before anything is evicted.
    """
    n = kid.shape[0]
    K = khash.shape[0]
    S = caps.shape[0]
    last = np.full(K, -1, np.int64)
    w = np.zeros(n + 1, np.int64)
    loaded = np.zeros(K, np.bool_)
    fresh_end = np.zeros(K, np.int64)
    stale_end = np.zeros(K, np.int64)
    hard_end = np.zeros(K, np.int64)
    b = np.zeros(S, np.int64)
    used = np.zeros(S, np.int64)
    hits = np.zeros((n_ns, S), np.int64)
    byte_hits = np.zeros((n_ns, S), np.int64)
    heap = [(np.int64(0), np.int64(0))]
    heap.pop()
    for i in range(n):
        t = t_ms[i]
        while len(heap) > 0 and heap[0][0] <= t:
            e, k = heapq.heappop(heap)
            if loaded[k] and hard_end[k] == e:
                loaded[k] = False
                p = last[k]
                wp = w[p]
                s = S - 1
                while s >= 0 and p >= b[s]:
                    used[s] -= wp
                    s -= 1
                w[p] = 0
                last[k] = -1
        k = kid[i]
        g = ns[i]
        sz = vsize[i] + overhead
        band = _band(t, loaded[k], fresh_end[k], stale_end[k], hard_end[k])
        p = last[k]
        s = S - 1
        if p >= 0:
            wp = w[p]
            while s >= 0 and p >= b[s]:
                used[s] += sz - wp
                s -= 1
            if band <= STALE and s < S - 1:  # a hit at every size from s + 1 up: counted once here
                hits[g, s + 1] += 1
                byte_hits[g, s + 1] += vsize[i]
            w[p] = 0
        while s >= 0:
            used[s] += sz
            s -= 1
        w[i] = sz
        last[k] = i
        if band != FRESH:
            if _load(k, t, ttl_ms[g], stale_ms[g], grace_ms[g], jitter[g], khash, fresh_end, stale_end,
                     hard_end):
                heapq.heappush(heap, (hard_end[k], np.int64(k)))
            loaded[k] = True
        for s in range(S):
            while used[s] > caps[s]:
                used[s] -= w[b[s]]
                b[s] += 1
    for s in range(1, S):  # a hit counted at its smallest size holds at every larger one
        hits[:, s] += hits[:, s - 1]
        byte_hits[:, s] += byte_hits[:, s - 1]
    return hits, byte_hits


@_compiled
def ttl_curve(kid, t_ms, vsize, khash, ttl_ms, stale_ms, grace_ms, jitter,  # type: ignore[no-untyped-def]
              overhead, t_end):
    """One TTL without a memory limit: fresh hits, stale hits, loads and resident byte·ms."""
    K = khash.shape[0]
    loaded = np.zeros(K, np.bool_)
    fresh_end = np.zeros(K, np.int64)
    stale_end = np.zeros(K, np.int64)
    hard_end = np.zeros(K, np.int64)
    cur = np.zeros(K, np.int64)
    since = np.zeros(K, np.int64)
    fresh = 0
    stale = 0
    loads = 0
    resident = 0.0
    for i in range(kid.shape[0]):
        k = kid[i]
        t = t_ms[i]
        band = _band(t, loaded[k], fresh_end[k], stale_end[k], hard_end[k])
        if loaded[k]:
            resident += float(min(t, hard_end[k]) - since[k]) * cur[k]
        if band == FRESH:
            fresh += 1
        else:
            loads += 1
            if band == STALE:
                stale += 1
            _load(k, t, ttl_ms, stale_ms, grace_ms, jitter, khash, fresh_end, stale_end, hard_end)
            loaded[k] = True
        cur[k] = vsize[i] + overhead
        since[k] = t
    for k in range(K):
        if loaded[k] and hard_end[k] > since[k]:
            resident += float(min(t_end, hard_end[k]) - since[k]) * cur[k]
    return fresh, stale, loads, resident


@_compiled
def _lfu_decayed(counter: np.int64, ldt: np.int64, now_min: np.int64, decay_min: np.int64) -> np.int64:
    if decay_min <= 0:
        return counter
    elapsed = (now_min - ldt) & 0xFFFF  # LFUTimeElapsed: 16-bit minutes, wrapping
    return max(np.int64(0), counter - elapsed // decay_min)


@_compiled
def _drop(k, pos, res, nres):  # type: ignore[no-untyped-def]
    """Take key k out of the resident set ``res[:nres]`` (swap with the last); the new count."""
    j = pos[k]
    nres -= 1
    res[j] = res[nres]
    pos[res[j]] = j
    pos[k] = -1
    return nres


@_compiled
def redis_curve(kid, t_ms, vsize, ns, khash, ttl_ms, stale_ms, grace_ms, jitter,  # type: ignore[no-untyped-def]
                overhead, cap, n_ns, lfu, samples, log_factor, decay_min, seed):
    """Hits per namespace at one ``maxmemory`` under Redis's sampled eviction (allkeys-lru/-lfu).

    As evict.c does it: while used memory is over the limit, sample ``samples`` keys, merge them
    into a 16-entry pool sorted by idle time (LRU: seconds since the 1 s LRU clock's last touch;
    LFU: 255 - the decayed log counter), evict the pool's best that still exists. Keys live on
    their own timeline here (a key evicted and loaded again starts a new TTL); expired keys are
    freed before anything is evicted.
    """
    np.random.seed(seed)
    K = khash.shape[0]
    pos = np.full(K, -1, np.int64)
    res = np.zeros(K, np.int64)
    nres = 0
    size = np.zeros(K, np.int64)
    fresh_end = np.zeros(K, np.int64)
    stale_end = np.zeros(K, np.int64)
    hard_end = np.zeros(K, np.int64)
    clock = np.zeros(K, np.int64)  # LRU: seconds of last touch; LFU: counter
    ldt = np.zeros(K, np.int64)  # LFU: minutes of last decrement
    pool_key = np.zeros(POOL_SIZE, np.int64)
    pool_idle = np.zeros(POOL_SIZE, np.int64)
    pool_n = 0
    used = 0
    hits = np.zeros(n_ns, np.int64)
    byte_hits = np.zeros(n_ns, np.int64)
    heap = [(np.int64(0), np.int64(0))]
    heap.pop()
    for i in range(kid.shape[0]):
        t = t_ms[i]
        while len(heap) > 0 and heap[0][0] <= t:
            e, k = heapq.heappop(heap)
            if pos[k] >= 0 and hard_end[k] == e:
                used -= size[k]
                nres = _drop(k, pos, res, nres)
        k = kid[i]
        g = ns[i]
        sz = vsize[i] + overhead
        now_s = t // 1000
        now_min = (t // 60000) & 0xFFFF
        band = _band(t, pos[k] >= 0, fresh_end[k], stale_end[k], hard_end[k])
        if pos[k] >= 0:
            used += sz - size[k]
            if band <= STALE:
                hits[g] += 1
                byte_hits[g] += vsize[i]
            if lfu:  # lookupKey's updateLFU: decay, then the logarithmic increment
                c = _lfu_decayed(clock[k], ldt[k], now_min, decay_min)
                if c < 255:
                    base = max(c - LFU_INIT_VAL, 0)
                    if np.random.random() < 1.0 / (base * log_factor + 1):
                        c += 1
                clock[k] = c
                ldt[k] = now_min
            else:
                clock[k] = now_s
        else:
            pos[k] = nres
            res[nres] = k
            nres += 1
            used += sz
            if lfu:
                clock[k] = LFU_INIT_VAL
                ldt[k] = now_min
            else:
                clock[k] = now_s
        size[k] = sz
        if band != FRESH:
            if _load(k, t, ttl_ms[g], stale_ms[g], grace_ms[g], jitter[g], khash, fresh_end, stale_end,
                     hard_end):
                heapq.heappush(heap, (hard_end[k], np.int64(k)))
            if not lfu:
                clock[k] = now_s
        while used > cap and nres > 0:
            for _ in range(samples):  # evictionPoolPopulate
                c = res[np.random.randint(0, nres)]
                if lfu:
                    idle = 255 - _lfu_decayed(clock[c], ldt[c], now_min, decay_min)
                else:
                    idle = (now_s - clock[c]) * 1000
                j = 0
                while j < pool_n and pool_idle[j] < idle:
                    j += 1
                if j == 0 and pool_n == POOL_SIZE:
                    continue
                if j == pool_n:
                    pool_n += 1
                elif pool_n < POOL_SIZE:
                    for m in range(pool_n, j, -1):
                        pool_key[m] = pool_key[m - 1]
                        pool_idle[m] = pool_idle[m - 1]
                    pool_n += 1
                else:
                    j -= 1
                    for m in range(j):
                        pool_key[m] = pool_key[m + 1]
                        pool_idle[m] = pool_idle[m + 1]
                pool_key[j] = c
                pool_idle[j] = idle
            while pool_n > 0:  # the best candidate that still exists
                pool_n -= 1
                c = pool_key[pool_n]
                if pos[c] >= 0:
                    used -= size[c]
                    nres = _drop(c, pos, res, nres)
                    break
    return hits, byte_hits
