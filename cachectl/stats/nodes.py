"""Each node's figures from two INFO snapshots: deltas over the interval, and read latency.

Only INFO and LATENCY HISTOGRAM are used (never CONFIG, which managed Redis blocks):
``maxmemory`` and ``maxmemory_policy`` come from INFO memory. One snapshot is one
pipelined round trip per primary: ``INFO``, ``INFO commandstats`` and
``LATENCY HISTOGRAM <get-like commands>`` (an error on Redis < 7, then ignored).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cachectl.stats.model import NodeStats, ReadHistogram, ReadLatency

# commands that read cached data; LATENCY HISTOGRAM ignores names the server lacks
GET_LIKE = ("get", "mget", "getex", "hget", "hmget", "hgetall")

Histogram = dict[int, int]  # bucket upper bound (usec) -> cumulative calls <= bound


@dataclass(frozen=True)
class Snapshot:
    """One primary's INFO at one moment (``at`` is the caller's monotonic clock, seconds)."""

    node: str
    at: float
    info: Mapping[str, Any]
    commandstats: Mapping[str, Any]
    histograms: Mapping[str, tuple[int, Histogram]] | None
    db: int = 0


def take_snapshot(node_client: Any, node: str, at: float) -> Snapshot:
    """One pipelined round trip: INFO, INFO commandstats, LATENCY HISTOGRAM (Redis >= 7)."""
    pipe = node_client.pipeline(transaction=False)
    pipe.info()
    pipe.info("commandstats")
    pipe.execute_command("LATENCY", "HISTOGRAM", *GET_LIKE)
    info, cmdstats, hist = pipe.execute(raise_on_error=False)
    if isinstance(info, BaseException):
        if "unknown command" not in str(info).lower():
            raise info
        info = {}  # a server without INFO (a proxy, an embedded server): no server figures
    if isinstance(cmdstats, BaseException):
        cmdstats = {}
    histograms = None if isinstance(hist, BaseException) else parse_histograms(hist)
    db = int(node_client.connection_pool.connection_kwargs.get("db", 0) or 0)
    return Snapshot(node=node, at=at, info=info, commandstats=cmdstats, histograms=histograms, db=db)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(value: Any) -> Iterable[tuple[Any, Any]]:
    """A RESP map as redis-py hands it over: a dict, or a flat [k, v, k, v] list."""
    if isinstance(value, Mapping):
        return value.items()
    items = list(value)
    return zip(items[0::2], items[1::2], strict=True)


def parse_histograms(raw: Any) -> dict[str, tuple[int, Histogram]]:
    """LATENCY HISTOGRAM's reply -> ``{command: (calls, {bucket_usec: cumulative})}``."""
    out: dict[str, tuple[int, Histogram]] = {}
    for name, body in _pairs(raw):
        fields = {_text(k): v for k, v in _pairs(body)}
        buckets = {int(k): int(v) for k, v in _pairs(fields.get("histogram_usec", []))}
        out[_text(name).lower()] = (int(fields.get("calls", 0)), buckets)
    return out


def cumulative_at(hist: Histogram, bound: int) -> int:
    """The cumulative count at ``bound``: Redis lists a bucket only when the count changes."""
    best = 0
    for b in sorted(hist):
        if b > bound:
            break
        best = hist[b]
    return best


def merge_histograms(hists: Iterable[Histogram]) -> Histogram:
    """The sum of several cumulative histograms (several commands, or several nodes)."""
    hists = list(hists)
    bounds = sorted({b for h in hists for b in h})
    return {b: sum(cumulative_at(h, b) for h in hists) for b in bounds}


def subtract_histograms(after: Histogram, before: Histogram) -> Histogram:
    """``after - before`` per bucket: the calls made between two snapshots."""
    bounds = sorted(set(after) | set(before))
    return {b: max(0, cumulative_at(after, b) - cumulative_at(before, b)) for b in bounds}


def histogram_quantile(hist: Histogram, q: float) -> float | None:
    """The ``q`` quantile in usec, interpolated linearly inside the bucket (b/2, b]."""
    if not hist:
        return None
    bounds = sorted(hist)
    total = hist[bounds[-1]]
    if total <= 0:
        return None
    target = q * total
    previous = 0
    for b in bounds:
        cum = hist[b]
        if cum >= target and cum > previous:
            lower = b / 2 if b > 1 else 0.0
            return lower + (target - previous) / (cum - previous) * (b - lower)
        previous = cum
    return float(bounds[-1])


def _as_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_latency(before: Snapshot, after: Snapshot) -> ReadLatency | None:
    """GET-like latency over the interval (or since restart when the interval had none)."""
    return combined_latency([(before, after)])


def combined_latency(pairs: list[tuple[Snapshot, Snapshot]]) -> ReadLatency | None:
    """Read latency over several nodes' snapshot pairs (histograms merged, not averaged)."""
    if pairs and all(a.histograms is not None and b.histograms is not None for a, b in pairs):
        interval_parts: list[Histogram] = []
        restart_parts: list[Histogram] = []
        commands: dict[str, int] = {}
        restart_commands: dict[str, int] = {}
        for before, after in pairs:
            assert before.histograms is not None and after.histograms is not None
            for cmd, (calls, hist) in after.histograms.items():
                prev_calls, prev_hist = before.histograms.get(cmd, (0, {}))
                delta = subtract_histograms(hist, prev_hist)
                interval_parts.append(delta)
                restart_parts.append(hist)
                if calls - prev_calls > 0:
                    commands[cmd] = commands.get(cmd, 0) + calls - prev_calls
                restart_commands[cmd] = restart_commands.get(cmd, 0) + calls
        basis, parts, used = "interval", interval_parts, commands
        if sum(used.values()) == 0:
            basis, parts, used = "since_restart", restart_parts, restart_commands
        calls = sum(used.values())
        if calls == 0:
            return ReadLatency("latency_histogram", basis, 0, None, None, None, {})
        merged = merge_histograms(parts)
        mean = _mean_from_commandstats(pairs, basis)
        p50 = histogram_quantile(merged, 0.50)
        p99 = histogram_quantile(merged, 0.99)
        return ReadLatency(
            "latency_histogram", basis, calls,
            None if p50 is None else p50 / 1000, None if p99 is None else p99 / 1000,
            mean, dict(sorted(used.items())))
    if pairs and all(b.commandstats for _, b in pairs):
        calls_i, usec_i, commands = _commandstats_delta(pairs, since_restart=False)
        basis = "interval"
        if calls_i == 0:
            calls_i, usec_i, commands = _commandstats_delta(pairs, since_restart=True)
            basis = "since_restart"
        mean = usec_i / calls_i / 1000 if calls_i else None
        return ReadLatency("commandstats", basis, calls_i, None, None, mean, commands)
    return None


def _commandstats_delta(pairs: list[tuple[Snapshot, Snapshot]],
                        since_restart: bool) -> tuple[int, int, dict[str, int]]:
    calls = usec = 0
    commands: dict[str, int] = {}
    for before, after in pairs:
        for cmd in GET_LIKE:
            a = after.commandstats.get(f"cmdstat_{cmd}") or {}
            b = {} if since_restart else before.commandstats.get(f"cmdstat_{cmd}") or {}
            dc = _as_int(a.get("calls")) - _as_int(b.get("calls"))
            du = _as_int(a.get("usec")) - _as_int(b.get("usec"))
            if dc > 0:
                calls += dc
                usec += max(0, du)
                commands[cmd] = commands.get(cmd, 0) + dc
    return calls, usec, commands


def _mean_from_commandstats(pairs: list[tuple[Snapshot, Snapshot]], basis: str) -> float | None:
    calls, usec, _ = _commandstats_delta(pairs, since_restart=basis == "since_restart")
    return usec / calls / 1000 if calls else None


def read_histogram(snapshot: Snapshot) -> ReadHistogram | None:
    """GET-like calls since restart as one cumulative histogram (None before Redis 7)."""
    if snapshot.histograms is None:
        return None
    merged = merge_histograms(hist for _, hist in snapshot.histograms.values())
    calls = sum(calls for calls, _ in snapshot.histograms.values())
    usec: int | None = None
    if snapshot.commandstats:
        usec = sum(_as_int((snapshot.commandstats.get(f"cmdstat_{cmd}") or {}).get("usec"))
                   for cmd in snapshot.histograms)
    return ReadHistogram(calls=calls, sum_usec=usec, buckets=tuple(sorted(merged.items())))


def _db_keys(info: Mapping[str, Any], db: int) -> tuple[int, int]:
    entry = info.get(f"db{db}")
    if not isinstance(entry, Mapping):
        return 0, 0
    return _as_int(entry.get("keys")), _as_int(entry.get("expires"))


def all_db_keys(info: Mapping[str, Any]) -> tuple[int, int]:
    """Keys and keys with a TTL over every database of a server."""
    keys = expires = 0
    for name, entry in info.items():
        if name.startswith("db") and name[2:].isdigit() and isinstance(entry, Mapping):
            keys += _as_int(entry.get("keys"))
            expires += _as_int(entry.get("expires"))
    return keys, expires


def server_engine(info: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(engine, its version) from INFO server: ("valkey", "9.1.2") or ("redis", "7.0.15")."""
    if "valkey_version" in info or info.get("server_name") == "valkey":
        version = info.get("valkey_version", info.get("redis_version"))
        return "valkey", None if version is None else str(version)
    if "redis_version" in info:
        return str(info.get("server_name") or "redis"), str(info["redis_version"])
    return None, None


def node_stats(before: Snapshot, after: Snapshot) -> NodeStats:
    """One primary's figures over the interval between two snapshots."""
    a, b = after.info, before.info
    elapsed = max(after.at - before.at, 1e-9)

    def delta(name: str) -> int:
        return max(0, _as_int(a.get(name)) - _as_int(b.get(name)))

    hits, misses = delta("keyspace_hits"), delta("keyspace_misses")
    hits_all, misses_all = _as_int(a.get("keyspace_hits")), _as_int(a.get("keyspace_misses"))
    used = _as_int(a.get("used_memory"))
    peak = _as_int(a.get("used_memory_peak"))
    maxmemory = _as_int(a.get("maxmemory"))
    system = _as_int(a.get("total_system_memory")) or None
    limit, source = (maxmemory, "maxmemory") if maxmemory else (system, "system" if system else None)
    keys, expires = _db_keys(a, after.db)
    evicted, expired = delta("evicted_keys"), delta("expired_keys")
    commands = delta("total_commands_processed")
    engine, engine_version = server_engine(a)
    return NodeStats(
        engine=engine,
        engine_version=engine_version,
        node=after.node,
        redis_version=str(a["redis_version"]) if "redis_version" in a else None,
        uptime_s=_as_int(a.get("uptime_in_seconds")) if "uptime_in_seconds" in a else None,
        interval_s=elapsed,
        hits=hits,
        misses=misses,
        hit_rate=hits / (hits + misses) if hits + misses else None,
        hits_since_restart=hits_all,
        misses_since_restart=misses_all,
        hit_rate_since_restart=hits_all / (hits_all + misses_all) if hits_all + misses_all else None,
        ops_per_s=commands / elapsed,
        commands=commands,
        used_memory_bytes=used,
        peak_memory_bytes=peak,
        maxmemory_bytes=maxmemory,
        system_memory_bytes=system,
        memory_limit_bytes=limit,
        memory_limit_source=source,
        used_memory_ratio=used / limit if limit else None,
        peak_memory_ratio=peak / limit if limit else None,
        eviction_policy=str(a["maxmemory_policy"]) if "maxmemory_policy" in a else None,
        evicted_keys=evicted,
        evicted_keys_per_s=evicted / elapsed,
        expired_keys=expired,
        expired_keys_per_s=expired / elapsed,
        fragmentation_ratio=_as_float(a.get("mem_fragmentation_ratio")),
        rss_bytes=_as_int(a.get("used_memory_rss")) if "used_memory_rss" in a else None,
        connected_clients=_as_int(a.get("connected_clients")),
        blocked_clients=_as_int(a.get("blocked_clients")),
        maxclients=_as_int(a.get("maxclients")) if "maxclients" in a else None,
        keys=keys,
        keys_with_ttl=expires,
        latency=read_latency(before, after),
        evicted_keys_since_restart=_as_int(a.get("evicted_keys")),
        expired_keys_since_restart=_as_int(a.get("expired_keys")),
        read_histogram=read_histogram(after),
    )


def total_stats(pairs: list[tuple[Snapshot, Snapshot]], nodes: list[NodeStats]) -> NodeStats:
    """All primaries together: counts and bytes summed, ratios recomputed, latency merged."""
    if len(nodes) == 1:
        return replace(nodes[0], node="total")
    elapsed = max(n.interval_s for n in nodes)
    hits, misses = sum(n.hits for n in nodes), sum(n.misses for n in nodes)
    hits_all = sum(n.hits_since_restart for n in nodes)
    misses_all = sum(n.misses_since_restart for n in nodes)
    used = sum(n.used_memory_bytes for n in nodes)
    peak = sum(n.peak_memory_bytes for n in nodes)
    limits = [n.memory_limit_bytes for n in nodes]
    limit = sum(x for x in limits if x) if all(limits) else None
    sources = {n.memory_limit_source for n in nodes}
    rss = [n.rss_bytes for n in nodes]
    rss_total = sum(x for x in rss if x is not None) if all(x is not None for x in rss) else None
    policies = {n.eviction_policy for n in nodes}
    versions = {n.redis_version for n in nodes}
    engines = {(n.engine, n.engine_version) for n in nodes}
    systems = [n.system_memory_bytes for n in nodes]
    maxclients = [n.maxclients for n in nodes]
    return NodeStats(
        node="total",
        redis_version=versions.pop() if len(versions) == 1 else None,
        engine=next(iter(engines))[0] if len(engines) == 1 else None,
        engine_version=next(iter(engines))[1] if len(engines) == 1 else None,
        uptime_s=min((n.uptime_s for n in nodes if n.uptime_s is not None), default=None),
        interval_s=elapsed,
        hits=hits,
        misses=misses,
        hit_rate=hits / (hits + misses) if hits + misses else None,
        hits_since_restart=hits_all,
        misses_since_restart=misses_all,
        hit_rate_since_restart=hits_all / (hits_all + misses_all) if hits_all + misses_all else None,
        ops_per_s=sum(n.ops_per_s for n in nodes),
        commands=sum(n.commands for n in nodes),
        used_memory_bytes=used,
        peak_memory_bytes=peak,
        maxmemory_bytes=sum(n.maxmemory_bytes for n in nodes),
        system_memory_bytes=max((s for s in systems if s), default=None),
        memory_limit_bytes=limit,
        memory_limit_source=sources.pop() if len(sources) == 1 else "mixed",
        used_memory_ratio=used / limit if limit else None,
        peak_memory_ratio=peak / limit if limit else None,
        eviction_policy=policies.pop() if len(policies) == 1 else "mixed",
        evicted_keys=sum(n.evicted_keys for n in nodes),
        evicted_keys_per_s=sum(n.evicted_keys_per_s for n in nodes),
        expired_keys=sum(n.expired_keys for n in nodes),
        expired_keys_per_s=sum(n.expired_keys_per_s for n in nodes),
        fragmentation_ratio=rss_total / used if rss_total is not None and used else None,
        rss_bytes=rss_total,
        connected_clients=sum(n.connected_clients for n in nodes),
        blocked_clients=sum(n.blocked_clients for n in nodes),
        maxclients=sum(m for m in maxclients if m) if all(maxclients) else None,
        keys=sum(n.keys for n in nodes),
        keys_with_ttl=sum(n.keys_with_ttl for n in nodes),
        latency=combined_latency(pairs),
        evicted_keys_since_restart=sum(n.evicted_keys_since_restart for n in nodes),
        expired_keys_since_restart=sum(n.expired_keys_since_restart for n in nodes),
    )
