"""StatsReport -> Prometheus text exposition format (version 0.0.4).

Every metric is prefixed ``cachectl_``; server metrics carry ``node`` (host:port of a
primary), namespace metrics carry ``cache_namespace`` (not ``namespace``: Prometheus's
Kubernetes discovery attaches the pod's ``namespace`` to every series it scrapes, and a
clash would rename ours to ``exported_namespace``). The output is self-contained, so it
works both at ``/metrics`` (``cachectl stats --serve``) and as a ``*.prom`` file for
node_exporter's textfile collector. Figures that could not be measured are left out
rather than exported as zero. No label value is free text: node and namespace names
come from the servers and the policy, reasons from ``SCRAPE_FAILURE_REASONS``.
docs/stats.md lists every metric; ``promtool check metrics`` passes on it (tested).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cachectl import __version__
from cachectl.stats.model import Check, NamespaceStats, NodeStats, StatsReport, Status
from cachectl.stats.scrape import SCRAPE_FAILURE_REASONS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

NAMESPACE_LABEL = "cache_namespace"

# ordered by severity, so `> 0` means something is wrong and `< 0` that it could not be judged
VERDICT_VALUES = {
    Status.NO_DATA: -2, Status.LOW_TRAFFIC: -1, Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2,
}
VERDICT_HELP = "-2 no data, -1 too little traffic, 0 pass, 1 warn, 2 fail (> 0: something is wrong)"

# the library's outcomes of a read: cachectl_namespace_requests_total{outcome=...}
OUTCOMES = (("fresh", "fresh_hits"), ("stale", "stale_hits"), ("fail_safe", "fail_safe_hits"),
            ("miss", "misses"))

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)


class _Writer:
    def __init__(self) -> None:
        self.families: dict[str, _Family] = {}

    def add(self, name: str, kind: str, help_text: str, value: float | int | None,
            suffix: str = "", **labels: str) -> None:
        """One sample; a counter's name gets ``_total``, a histogram's samples ``suffix``."""
        full = f"cachectl_{name}" + ("_total" if kind == "counter" else "")
        family = self.families.setdefault(full, _Family(full, kind, help_text))
        if value is None:
            return
        number = float(value)
        if math.isnan(number):
            return
        family.samples.append((suffix, tuple(labels.items()), number))

    def text(self) -> str:
        lines: list[str] = []
        for family in self.families.values():
            if not family.samples:
                continue
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for suffix, labels, value in family.samples:
                label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                name = family.name + suffix
                lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text
                             else f"{name} {_number(value)}")
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


def _build_info(w: _Writer) -> None:
    w.add("build_info", "gauge", "cachectl's version, as labels (value 1).", 1,
          version=__version__, python=platform.python_version())


def _node_metrics(w: _Writer, n: NodeStats) -> None:
    node = n.node
    w.add("up", "gauge", "1 when the primary answered; 0 with a reason when Redis could not be "
          "read.", 1, node=node)
    w.add("server_hit_ratio", "gauge",
          "keyspace_hits / (hits + misses) over the sampled interval.", n.hit_rate, node=node)
    w.add("server_hit_ratio_since_restart", "gauge",
          "keyspace_hits / (hits + misses) since the server started.", n.hit_rate_since_restart,
          node=node)
    w.add("keyspace_hits", "counter", "INFO keyspace_hits (since restart).",
          n.hits_since_restart, node=node)
    w.add("keyspace_misses", "counter", "INFO keyspace_misses (since restart).",
          n.misses_since_restart, node=node)
    w.add("evicted_keys", "counter", "INFO evicted_keys (since restart).",
          n.evicted_keys_since_restart, node=node)
    w.add("expired_keys", "counter", "INFO expired_keys (since restart).",
          n.expired_keys_since_restart, node=node)
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
    _read_latency(w, n)


def _read_latency(w: _Writer, n: NodeStats) -> None:
    node = n.node
    hist = n.read_histogram
    if hist is not None:
        help_text = ("Server-side execution time of GET-like commands since the server started "
                     "(LATENCY HISTOGRAM).")
        for bound_usec, cumulative in hist.buckets:
            w.add("read_latency_seconds", "histogram", help_text, cumulative, suffix="_bucket",
                  node=node, le=_number(bound_usec / 1_000_000))
        w.add("read_latency_seconds", "histogram", help_text, hist.calls, suffix="_bucket",
              node=node, le="+Inf")
        if hist.sum_usec is not None:
            w.add("read_latency_seconds", "histogram", help_text, hist.sum_usec / 1_000_000,
                  suffix="_sum", node=node)
        w.add("read_latency_seconds", "histogram", help_text, hist.calls, suffix="_count",
              node=node)
    lat = n.latency
    if lat is not None:
        w.add("read_latency_p50_seconds", "gauge",
              "Median server-side read latency over the sampled interval.",
              None if lat.p50_ms is None else lat.p50_ms / 1000, node=node)
        w.add("read_latency_p99_seconds", "gauge",
              "99th percentile server-side read latency over the sampled interval.",
              None if lat.p99_ms is None else lat.p99_ms / 1000, node=node)
        w.add("read_latency_mean_seconds", "gauge",
              "Mean server-side read latency of GET-like commands.",
              None if lat.mean_ms is None else lat.mean_ms / 1000, node=node)


def _namespace_metrics(w: _Writer, ns: NamespaceStats) -> None:
    label = {NAMESPACE_LABEL: ns.namespace}
    totals = ns.counter_totals
    for outcome, counter in OUTCOMES:
        w.add("namespace_requests", "counter",
              "Reads through the library by outcome: fresh, stale, fail_safe (hits) or miss.",
              totals.get(counter, 0), **label, outcome=outcome)
    w.add("namespace_refreshes", "counter", "Background refreshes of stale values.",
          totals.get("refreshes", 0), **label)
    w.add("namespace_refresh_errors", "counter", "Loads that failed.",
          totals.get("refresh_errors", 0), **label)
    w.add("namespace_redis_errors", "counter", "Redis errors (fallbacks to the origin).",
          totals.get("redis_errors", 0), **label)
    w.add("namespace_trace_dropped", "counter",
          "Access-trace events the library dropped (its buffer was full or Redis unavailable).",
          totals.get("trace_dropped", 0), **label)
    w.add("namespace_load_seconds", "summary", "Time spent loading from the origin.",
          totals.get("load_us", 0) / 1_000_000, suffix="_sum", **label)
    w.add("namespace_load_seconds", "summary", "Time spent loading from the origin.",
          totals.get("loads", 0), suffix="_count", **label)
    w.add("namespace_window_requests", "gauge", "Hits + misses in the counter window.",
          ns.requests, **label)
    w.add("namespace_hit_ratio", "gauge", "Hits / requests in the counter window.", ns.hit_rate,
          **label)
    w.add("namespace_hit_ratio_threshold", "gauge",
          "The hit rate this namespace must exceed (critical folded in).", ns.hit_rate_threshold,
          **label)
    w.add("namespace_stale_ratio", "gauge",
          "Share of hits served stale or fail-safe in the counter window.", ns.stale_ratio,
          **label)
    w.add("namespace_load_mean_seconds", "gauge", "Mean origin load time in the counter window.",
          None if ns.mean_load_ms is None else ns.mean_load_ms / 1000, **label)
    if ns.keys is not None:
        w.add("namespace_keys", "gauge", "Keys of the namespace (sampled estimate unless exact).",
              ns.keys.keys, **label)
        w.add("namespace_memory_bytes", "gauge", "Memory of the namespace's keys (sampled estimate).",
              ns.keys.memory_bytes, **label)
    _verify_metrics(w, ns.verify, label)


def _verify_metrics(w: _Writer, record: dict[str, Any] | None, label: dict[str, str]) -> None:
    """The last cachectl verify result of a namespace, when one was recorded."""
    if not record:
        return
    estimate = record.get("inconsistency")
    ratio = estimate.get("ratio") if isinstance(estimate, dict) else None
    w.add("namespace_inconsistency_ratio", "gauge",
          "Share of keys the last cachectl verify found wrong while fresh (different, missing "
          "from the source or unparseable).", ratio if isinstance(ratio, int | float) else None,
          **label)
    checked = record.get("checked")
    w.add("namespace_verified_keys", "gauge", "Keys the last cachectl verify checked.",
          checked if isinstance(checked, int) else None, **label)


def _check_metrics(w: _Writer, checks: Iterable[Check]) -> None:
    for c in checks:
        w.add("check_verdict", "gauge", f"Verdict per check: {VERDICT_HELP}.",
              VERDICT_VALUES[c.status], check=c.check, node=c.node or "",
              **{NAMESPACE_LABEL: c.namespace or ""})


def prometheus_text(report: StatsReport) -> str:
    """The report as Prometheus text exposition (HELP and TYPE for every family)."""
    w = _Writer()
    _build_info(w)
    for n in report.nodes:
        _node_metrics(w, n)
    for ns in report.namespaces:
        _namespace_metrics(w, ns)
    _check_metrics(w, report.checks)
    w.add("checks_failed", "gauge", "Checks whose verdict is fail.",
          sum(c.status is Status.FAIL for c in report.checks))
    w.add("checks_warned", "gauge", "Checks whose verdict is warn.",
          sum(c.status is Status.WARN for c in report.checks))
    w.add("status", "gauge", f"Worst verdict: {VERDICT_HELP}.", VERDICT_VALUES[report.status])
    w.add("malformed_fields", "gauge",
          "Malformed library counter fields left out of this report (not integers, not UTF-8).",
          report.skipped_counter_fields)
    w.add("interval_seconds", "gauge", "Length of the sampled interval.", report.interval_s)
    w.add("window_seconds", "gauge", "Length of the counter window.", report.window_s)
    if report.scan.enabled:
        w.add("scan_duration_seconds", "gauge", "Time the sampled key scan took.",
              report.scan.duration_ms / 1000)
    return w.text()


def unavailable_text(reason: str) -> str:
    """What a scrape returns when Redis could not be read: ``cachectl_up 0`` with a bounded reason."""
    if reason not in SCRAPE_FAILURE_REASONS:
        raise ValueError(f"unknown scrape failure reason {reason!r}")
    w = _Writer()
    _build_info(w)
    w.add("up", "gauge", "1 when the primary answered; 0 with a reason when Redis could not be "
          "read.", 0, reason=reason)
    return w.text()
