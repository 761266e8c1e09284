"""StatsReport -> Prometheus text exposition format (version 0.0.4).

Every metric is prefixed ``cachectl_``; server metrics carry ``node`` (host:port of a
primary), namespace metrics carry ``namespace``. The output is self-contained, so it
works both at ``/metrics`` (``cachectl stats --serve``) and as a ``*.prom`` file for
node_exporter's textfile collector. Figures that could not be measured are left out
rather than exported as zero. docs/stats.md lists every metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from cachectl.stats.model import Check, NamespaceStats, NodeStats, StatsReport, Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STATUS_CODES = {
    Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2, Status.LOW_TRAFFIC: 3, Status.NO_DATA: 4,
}

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)


class _Writer:
    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}

    def add(self, name: str, kind: str, help_text: str, value: float | int | None,
            **labels: str) -> None:
        full = f"cachectl_{name}" + ("_total" if kind == "counter" else "")
        family = self.families.setdefault(full, _Family(full, kind, help_text))
        if value is None:
            return
        number = float(value)
        if math.isnan(number):
            return
        family.samples.append((tuple(labels.items()), number))

    def text(self) -> str:
        lines: list[str] = []
        for family in self.families.values():
            if not family.samples:
                continue
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for labels, value in family.samples:
                label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                lines.append(f"{family.name}{{{label_text}}} {_number(value)}" if label_text
                             else f"{family.name} {_number(value)}")
        return "\n".join(lines) + "\n"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _node_metrics(w: _Writer, n: NodeStats) -> None:
    node = n.node
    w.add("up", "gauge", "1 when the primary answered INFO.", 1, node=node)
    w.add("server_hit_ratio", "gauge",
          "keyspace_hits / (hits + misses) over the sampled interval.", n.hit_rate, node=node)
    w.add("server_hit_ratio_since_restart", "gauge",
          "keyspace_hits / (hits + misses) since the server started.", n.hit_rate_since_restart,
          node=node)
    w.add("keyspace_hits", "counter", "INFO keyspace_hits (since restart).",
          n.hits_since_restart, node=node)
    w.add("keyspace_misses", "counter", "INFO keyspace_misses (since restart).",
          n.misses_since_restart, node=node)
    w.add("ops_per_second", "gauge", "Commands processed per second over the interval.",
          n.ops_per_s, node=node)
    w.add("memory_used_bytes", "gauge", "INFO used_memory.", n.used_memory_bytes, node=node)
    w.add("memory_peak_bytes", "gauge", "INFO used_memory_peak.", n.peak_memory_bytes, node=node)
    w.add("memory_max_bytes", "gauge", "INFO maxmemory (0: unbounded).", n.maxmemory_bytes,
          node=node)
    w.add("memory_limit_bytes", "gauge",
          "The limit used memory is judged against: maxmemory, or the machine's memory when "
          "maxmemory is 0.", n.memory_limit_bytes, node=node)
    w.add("memory_used_ratio", "gauge", "used_memory / memory_limit_bytes.", n.used_memory_ratio,
          node=node)
    w.add("memory_peak_ratio", "gauge", "used_memory_peak / memory_limit_bytes.",
          n.peak_memory_ratio, node=node)
    w.add("memory_rss_bytes", "gauge", "INFO used_memory_rss.", n.rss_bytes, node=node)
    w.add("fragmentation_ratio", "gauge", "INFO mem_fragmentation_ratio.", n.fragmentation_ratio,
          node=node)
    if n.eviction_policy:
        w.add("eviction_policy_info", "gauge", "The maxmemory-policy, as a label (value 1).", 1,
              node=node, policy=n.eviction_policy)
    w.add("evicted_keys_per_second", "gauge", "Keys evicted per second over the interval.",
          n.evicted_keys_per_s, node=node)
    w.add("expired_keys_per_second", "gauge", "Keys expired per second over the interval.",
          n.expired_keys_per_s, node=node)
    w.add("connected_clients", "gauge", "INFO connected_clients.", n.connected_clients, node=node)
    w.add("blocked_clients", "gauge", "INFO blocked_clients.", n.blocked_clients, node=node)
    w.add("keys", "gauge", "Keys in the connected database.", n.keys, node=node)
    w.add("keys_with_ttl", "gauge", "Keys with a TTL in the connected database.", n.keys_with_ttl,
          node=node)
    lat = n.latency
    if lat is not None:
        help_text = ("Server-side read latency of GET-like commands (execution inside Redis), "
                     "by quantile.")
        if lat.p50_ms is not None:
            w.add("read_latency_seconds", "gauge", help_text, lat.p50_ms / 1000, node=node,
                  quantile="0.5")
        if lat.p99_ms is not None:
            w.add("read_latency_seconds", "gauge", help_text, lat.p99_ms / 1000, node=node,
                  quantile="0.99")
        if lat.mean_ms is not None:
            w.add("read_latency_mean_seconds", "gauge",
                  "Mean server-side read latency of GET-like commands.", lat.mean_ms / 1000,
                  node=node)


def _namespace_metrics(w: _Writer, ns: NamespaceStats) -> None:
    name = ns.namespace
    for state, value in (("fresh", ns.fresh_hits), ("stale", ns.stale_hits),
                         ("fail_safe", ns.fail_safe_hits)):
        w.add("namespace_hits", "gauge", "Hits in the window, by freshness (library counters).",
              value, namespace=name, state=state)
    w.add("namespace_misses", "gauge", "Misses in the window.", ns.misses, namespace=name)
    w.add("namespace_requests", "gauge", "Hits + misses in the window.", ns.requests,
          namespace=name)
    w.add("namespace_refresh_errors", "gauge", "Failed reloads in the window.", ns.refresh_errors,
          namespace=name)
    w.add("namespace_redis_errors", "gauge", "Redis errors (fallbacks to the origin) in the window.",
          ns.redis_errors, namespace=name)
    w.add("namespace_loads", "gauge", "Origin loads in the window.", ns.loads, namespace=name)
    w.add("namespace_origin_calls_saved", "gauge", "Hits in the window: origin calls avoided.",
          ns.origin_calls_saved, namespace=name)
    w.add("namespace_hit_ratio", "gauge", "Hits / requests in the window.", ns.hit_rate,
          namespace=name)
    w.add("namespace_hit_ratio_threshold", "gauge",
          "The hit rate this namespace must exceed (critical folded in).", ns.hit_rate_threshold,
          namespace=name)
    w.add("namespace_stale_ratio", "gauge", "Share of hits served stale or fail-safe.",
          ns.stale_ratio, namespace=name)
    w.add("namespace_load_mean_seconds", "gauge", "Mean origin load time in the window.",
          None if ns.mean_load_ms is None else ns.mean_load_ms / 1000, namespace=name)
    if ns.keys is not None:
        w.add("namespace_keys", "gauge", "Keys of the namespace (sampled estimate unless exact).",
              ns.keys.keys, namespace=name)
        w.add("namespace_memory_bytes", "gauge", "Memory of the namespace's keys (sampled estimate).",
              ns.keys.memory_bytes, namespace=name)


def _check_metrics(w: _Writer, checks: Iterable[Check]) -> None:
    for c in checks:
        w.add("check_status", "gauge",
              "Verdict per check: 0 pass, 1 warn, 2 fail, 3 too little traffic, 4 no data.",
              STATUS_CODES[c.status], check=c.check, node=c.node or "", namespace=c.namespace or "")


def prometheus_text(report: StatsReport) -> str:
    """The report as Prometheus text exposition (HELP and TYPE for every family)."""
    w = _Writer()
    for n in report.nodes:
        _node_metrics(w, n)
    for ns in report.namespaces:
        _namespace_metrics(w, ns)
    _check_metrics(w, report.checks)
    w.add("checks_failed", "gauge", "Checks whose verdict is fail.",
          sum(c.status is Status.FAIL for c in report.checks))
    w.add("checks_warned", "gauge", "Checks whose verdict is warn.",
          sum(c.status is Status.WARN for c in report.checks))
    w.add("status", "gauge", "Worst verdict: 0 pass, 1 warn, 2 fail, 3 too little traffic, 4 no data.",
          STATUS_CODES[report.status])
    w.add("interval_seconds", "gauge", "Length of the sampled interval.", report.interval_s)
    w.add("window_seconds", "gauge", "Length of the counter window.", report.window_s)
    if report.scan.enabled:
        w.add("scan_duration_seconds", "gauge", "Time the sampled key scan took.",
              report.scan.duration_ms / 1000)
    return w.text()


def unavailable_text(message: str) -> str:
    """What a scrape returns when Redis cannot be reached: ``cachectl_up 0`` and the reason."""
    w = _Writer()
    w.add("up", "gauge", "1 when the primary answered INFO.", 0, error=message[:200])
    return w.text()
