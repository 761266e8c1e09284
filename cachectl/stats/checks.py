"""Verdicts: every figure next to its threshold from the policy, PASS/WARN/FAIL.

Thresholds follow docs/design.md's table: a hit rate must *exceed* its threshold, used
memory and p99 latency must stay *below* theirs, the stale share must not be above
``max_stale_ratio``. A namespace with fewer than ``thresholds.min_requests``
requests in the window is "too little traffic", neither a pass nor a failure.
"""

from __future__ import annotations

from cachectl.policy.model import Thresholds
from cachectl.stats.model import Check, NamespaceStats, NodeStats, Status

FRAGMENTATION_HIGH = 1.5
FRAGMENTATION_MIN_BYTES = 100 * 1024 * 1024  # below this, the ratio is noise
CLIENTS_WARN_RATIO = 0.9
CANNOT_EVICT = "noeviction"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def server_checks(node: NodeStats, t: Thresholds, *, hot: bool, per_node: bool) -> list[Check]:
    """Checks on one primary (``per_node``) or on the total."""
    where = node.node if per_node else None
    out: list[Check] = []
    label = f"{node.node}: " if per_node else ""

    # hit rate over the interval: server-wide reads include non-cache keys, so a warning
    requests = node.hits + node.misses
    if node.hit_rate is None or requests < t.min_requests:
        out.append(Check("server_hit_rate", Status.LOW_TRAFFIC,
                         f"{label}{requests} reads in {node.interval_s:.1f}s: too little traffic "
                         f"to judge the server hit rate (min {t.min_requests})",
                         node.hit_rate, t.hit_rate, ">", "ratio", node=where))
    elif node.hit_rate > t.hit_rate:
        out.append(Check("server_hit_rate", Status.PASS,
                         f"{label}server hit rate {_pct(node.hit_rate)} > {_pct(t.hit_rate)}",
                         node.hit_rate, t.hit_rate, ">", "ratio", node=where))
    else:
        out.append(Check("server_hit_rate", Status.WARN,
                         f"{label}server hit rate {_pct(node.hit_rate)} is not above "
                         f"{_pct(t.hit_rate)} (all keys, not only cached data)",
                         node.hit_rate, t.hit_rate, ">", "ratio", node=where))

    # memory
    if node.maxmemory_bytes == 0:
        out.append(Check("maxmemory", Status.WARN,
                         f"{label}maxmemory is 0: unbounded cache; used memory is judged against the "
                         "machine's total memory, and Redis will grow until the OS kills it",
                         0, None, None, "bytes", node=where))
    if node.used_memory_ratio is None:
        out.append(Check("memory_used_ratio", Status.NO_DATA,
                         f"{label}no memory limit known (maxmemory 0 and no total_system_memory)",
                         None, t.memory_used_ratio, "<", "ratio", node=where))
    else:
        against = "maxmemory" if node.memory_limit_source == "maxmemory" else "system memory"
        status = Status.PASS if node.used_memory_ratio < t.memory_used_ratio else Status.FAIL
        verb = "<" if status is Status.PASS else ">="
        out.append(Check("memory_used_ratio", status,
                         f"{label}used memory {_pct(node.used_memory_ratio)} of {against} {verb} "
                         f"{_pct(t.memory_used_ratio)}",
                         node.used_memory_ratio, t.memory_used_ratio, "<", "ratio", node=where))
        peak = node.peak_memory_ratio
        if status is Status.PASS and peak is not None and peak >= t.memory_used_ratio:
            out.append(Check("memory_peak_ratio", Status.WARN,
                             f"{label}peak memory {_pct(peak)} of {against} reached "
                             f"{_pct(t.memory_used_ratio)} since restart",
                             peak, t.memory_used_ratio, "<", "ratio", node=where))

    # eviction
    policy = node.eviction_policy
    if policy == CANNOT_EVICT:
        out.append(Check("eviction_policy", Status.WARN,
                         f"{label}maxmemory-policy is noeviction: when memory is full, writes fail "
                         "with OOM instead of evicting; a cache wants allkeys-lru or allkeys-lfu",
                         policy, None, None, "", node=where))
    elif policy and policy.startswith("volatile-") and node.keys > node.keys_with_ttl:
        missing = node.keys - node.keys_with_ttl
        out.append(Check("eviction_policy", Status.WARN,
                         f"{label}maxmemory-policy is {policy}, but {missing} keys have no TTL and "
                         "can never be evicted",
                         policy, None, None, "", node=where))
    elif policy:
        out.append(Check("eviction_policy", Status.PASS, f"{label}maxmemory-policy is {policy}",
                         policy, None, None, "", node=where))
    if node.evicted_keys:
        out.append(Check("evictions", Status.WARN,
                         f"{label}{node.evicted_keys_per_s:.1f} keys/s evicted: the cache is under "
                         "memory pressure", node.evicted_keys_per_s, 0, "<=", "keys/s", node=where))

    # fragmentation, only where it means something
    frag = node.fragmentation_ratio
    if frag is not None and node.rss_bytes is not None:
        wasted = node.rss_bytes - node.used_memory_bytes
        if frag > FRAGMENTATION_HIGH and wasted > FRAGMENTATION_MIN_BYTES:
            out.append(Check("fragmentation", Status.WARN,
                             f"{label}fragmentation ratio {frag:.2f}: {wasted // 2**20} MiB of RSS "
                             "holds no data (consider activedefrag)",
                             frag, FRAGMENTATION_HIGH, "<=", "ratio", node=where))
        elif frag < 1.0 and node.used_memory_bytes > FRAGMENTATION_MIN_BYTES:
            out.append(Check("fragmentation", Status.WARN,
                             f"{label}fragmentation ratio {frag:.2f} < 1: part of the dataset is "
                             "swapped out", frag, 1.0, ">=", "ratio", node=where))

    if node.maxclients and node.connected_clients >= CLIENTS_WARN_RATIO * node.maxclients:
        out.append(Check("connected_clients", Status.WARN,
                         f"{label}{node.connected_clients} of maxclients {node.maxclients} connected",
                         node.connected_clients, node.maxclients * CLIENTS_WARN_RATIO, "<",
                         "clients", node=where))

    # read latency (server-side execution time of GET-like commands)
    threshold = t.latency_hot_p99_ms if hot else t.latency_cached_p99_ms
    kind = "hot" if hot else "cached"
    lat = node.latency
    if lat is None:
        out.append(Check("read_latency_p99", Status.NO_DATA,
                         f"{label}the server reports no read latency", None, threshold, "<", "ms",
                         node=where))
    elif lat.p99_ms is None:
        mean = f" (mean {lat.mean_ms:.3f} ms, {lat.source})" if lat.mean_ms is not None else ""
        out.append(Check("read_latency_p99", Status.NO_DATA,
                         f"{label}no read p99 from the server{mean}", None, threshold, "<", "ms",
                         node=where))
    else:
        ok = lat.p99_ms < threshold
        basis = "" if lat.basis == "interval" else " (since restart)"
        out.append(Check("read_latency_p99", Status.PASS if ok else Status.FAIL,
                         f"{label}read p99 {lat.p99_ms:.3f} ms{basis} {'<' if ok else '>='} "
                         f"{threshold:g} ms ({kind} data)",
                         lat.p99_ms, threshold, "<", "ms", node=where))
    return out


def namespace_checks(ns: NamespaceStats, t: Thresholds) -> list[Check]:
    """Hit rate, stale share, and errors of one namespace over the window."""
    out: list[Check] = []
    name = ns.namespace
    if not ns.in_policy:
        out.append(Check("unknown_namespace", Status.WARN,
                         f"{name}: counters for a namespace the policy does not define",
                         name, None, None, "", namespace=name))
    out.extend(_error_checks(ns))
    if ns.requests < t.min_requests or ns.hit_rate is None:
        # errors above are reported whatever the volume; rates need enough requests
        out.insert(0, Check("hit_rate", Status.LOW_TRAFFIC,
                            f"{name}: {ns.requests} requests in the window: too little traffic to "
                            f"judge (min {t.min_requests})",
                            ns.hit_rate, ns.hit_rate_threshold, ">", "ratio", namespace=name))
        return out
    critical = " (critical)" if ns.critical else ""
    if ns.hit_rate > ns.hit_rate_threshold:
        out.append(Check("hit_rate", Status.PASS,
                         f"{name}: hit rate {_pct(ns.hit_rate)} > {_pct(ns.hit_rate_threshold)}{critical}",
                         ns.hit_rate, ns.hit_rate_threshold, ">", "ratio", namespace=name))
    else:
        out.append(Check("hit_rate", Status.FAIL,
                         f"{name}: hit rate {_pct(ns.hit_rate)} is not above "
                         f"{_pct(ns.hit_rate_threshold)}{critical}",
                         ns.hit_rate, ns.hit_rate_threshold, ">", "ratio", namespace=name))
    if ns.stale_ratio is not None:
        ok = ns.stale_ratio <= t.max_stale_ratio
        out.append(Check("stale_ratio", Status.PASS if ok else Status.FAIL,
                         f"{name}: {_pct(ns.stale_ratio)} of hits served stale or fail-safe "
                         f"{'<=' if ok else '>'} {_pct(t.max_stale_ratio)}"
                         + ("" if ok else " (is the origin failing or slow?)"),
                         ns.stale_ratio, t.max_stale_ratio, "<=", "ratio", namespace=name))
    return out


def _error_checks(ns: NamespaceStats) -> list[Check]:
    out: list[Check] = []
    name = ns.namespace
    if ns.fail_safe_hits or ns.refresh_errors:
        out.append(Check("refresh_errors", Status.WARN,
                         f"{name}: {ns.refresh_errors} refresh errors, {ns.fail_safe_hits} fail-safe "
                         "hits: the origin failed and stale data was served",
                         ns.refresh_errors, 0, "<=", "errors", namespace=name))
    if ns.redis_errors:
        out.append(Check("redis_errors", Status.WARN,
                         f"{name}: {ns.redis_errors} Redis errors: the application fell back to "
                         "the origin", ns.redis_errors, 0, "<=", "errors", namespace=name))
    return out
