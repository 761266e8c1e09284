"""Per-namespace figures: the library's counters over a window, and a sampled key scan.

The counters are the per-minute hashes of ``cachectl.counter_format`` (written by every
application process). The key figures come from the first ``sample_keys`` keys a
SCAN returns on each primary: SCAN walks the hash table in reverse-binary bucket
order and keys land in buckets by hash, so that prefix is a uniform sample of the
keyspace. Counts are scaled by DBSIZE; memory is the sampled mean of MEMORY USAGE
times the estimated count. A primary holding no more keys than the sample is
scanned whole, and its counts are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachectl.connection import node_name, primaries
from cachectl.counter_format import CounterRead, NamespaceCounters
from cachectl.counter_format import read_counters as read_counter_hashes
from cachectl.fanout import each_node
from cachectl.keyspace import NamespaceMatcher
from cachectl.policy.model import Namespace
from cachectl.stats.model import KeySample, ScanSummary

DEFAULT_SAMPLE_KEYS = 10_000
MEMORY_SAMPLE_PER_NAMESPACE = 500
SCAN_COUNT = 1000
Z95 = 1.96


def window_minutes(now_s: float, window_s: int) -> range:
    """The epoch minutes of a window ending now: the current minute and the ones before it."""
    last = int(now_s // 60)
    count = max(1, math.ceil(window_s / 60))
    return range(last - count + 1, last + 1)


def read_counters(client: Any, internal_prefix: str,
                  minutes: Iterable[int]) -> tuple[CounterRead, CounterRead]:
    """Every namespace's counters summed over ``minutes``, and the running totals (one round trip)."""
    return read_counter_hashes(client, internal_prefix, minutes)


@dataclass
class _NodeSample:
    node: str
    dbsize: int
    scanned: int
    exact: bool
    matched: dict[str, int] = field(default_factory=dict)
    memory: dict[str, list[int]] = field(default_factory=dict)
    unmatched: int = 0


def _sample_node(node_client: Any, matcher: NamespaceMatcher, sample_keys: int) -> _NodeSample:
    """SCAN one primary until ``sample_keys`` distinct keys (or the end), then MEMORY USAGE."""
    dbsize = int(node_client.dbsize())
    seen: set[bytes] = set()
    cursor = 0
    exact = False
    while True:
        cursor, keys = node_client.scan(cursor=cursor, count=SCAN_COUNT)
        seen.update(keys)
        if int(cursor) == 0:
            exact = True
            break
        if len(seen) >= sample_keys:
            break
    sample = _NodeSample(node=node_name(node_client), dbsize=dbsize, scanned=len(seen), exact=exact)
    to_measure: dict[str, list[bytes]] = {}
    for key in seen:
        ns = matcher.namespace_of(key)
        if ns is None:
            sample.unmatched += 1
            continue
        sample.matched[ns.name] = sample.matched.get(ns.name, 0) + 1
        bucket = to_measure.setdefault(ns.name, [])
        if len(bucket) < MEMORY_SAMPLE_PER_NAMESPACE:
            bucket.append(key)
    pipe = node_client.pipeline(transaction=False)
    order: list[str] = []
    for name, keys in to_measure.items():
        for key in keys:
            pipe.memory_usage(key)
            order.append(name)
    results = pipe.execute(raise_on_error=False) if order else []
    for name, result in zip(order, results, strict=True):
        if isinstance(result, int):
            sample.memory.setdefault(name, []).append(result)
    return sample


def _estimate(samples: list[_NodeSample], name: str) -> KeySample:
    keys = 0
    variance = 0.0
    memory = 0.0
    memory_known = True
    measured_total = 0
    measured_count = 0
    for s in samples:
        m = s.matched.get(name, 0)
        if s.exact or s.scanned == 0:
            count = float(m)
        else:
            p = m / s.scanned
            count = s.dbsize * p
            fpc = (s.dbsize - s.scanned) / (s.dbsize - 1) if s.dbsize > 1 else 0.0
            variance += (s.dbsize ** 2) * p * (1 - p) / s.scanned * max(fpc, 0.0)
        keys += round(count)
        sizes = s.memory.get(name, [])
        if sizes:
            memory += count * (sum(sizes) / len(sizes))
            measured_total += sum(sizes)
            measured_count += len(sizes)
        elif m:
            memory_known = False
    return KeySample(
        keys=keys,
        keys_margin=round(Z95 * math.sqrt(variance)),
        memory_bytes=round(memory) if memory_known else None,
        mean_key_bytes=measured_total / measured_count if measured_count else None,
        sampled_keys=sum(s.matched.get(name, 0) for s in samples),
        exact=all(s.exact for s in samples),
    )


def sample_keyspace(client: Any, namespaces: Iterable[Namespace], wanted: Iterable[str], *,
                    sample_keys: int = DEFAULT_SAMPLE_KEYS,
                    clock: Any = None) -> tuple[dict[str, KeySample], ScanSummary]:
    """Key count and memory per namespace in ``wanted``, from a sampled SCAN of every primary.

    Keys are attributed by the exact matcher over ``namespaces`` (all of the policy's,
    so a key is never counted in a namespace that does not own it).
    Redis side effects: SCAN, DBSIZE and MEMORY USAGE only (no keyspace hits or misses).
    """
    matcher = NamespaceMatcher(namespaces)
    start = clock() if clock else 0.0
    # the primaries at the same time, a thread each; the samples in node order
    samples = each_node(primaries(client),
                        lambda _, node: _sample_node(node, matcher, sample_keys))
    estimates = {name: _estimate(samples, name) for name in wanted}
    summary = ScanSummary(
        enabled=True,
        exact=all(s.exact for s in samples),
        scanned_keys=sum(s.scanned for s in samples),
        total_keys=sum(s.dbsize for s in samples),
        unmatched_keys=sum(s.unmatched for s in samples),
        duration_ms=((clock() - start) * 1000) if clock else 0.0,
    )
    return estimates, summary


def counters_by_namespace(counters: Mapping[str, NamespaceCounters],
                          names: Iterable[str]) -> dict[str, NamespaceCounters]:
    """``counters`` for each of ``names`` (zeroes for a namespace with no traffic)."""
    return {name: counters.get(name, NamespaceCounters()) for name in names}
