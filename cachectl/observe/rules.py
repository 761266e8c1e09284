"""Prometheus recording and alerting rules from a policy, for the metrics ``stats --serve`` exposes.

One rule group per policy. Recording rules turn the counters into ratios of rates over
``window`` (``cachectl:namespace_hit_ratio:rate5m``…), keeping ``job`` so two policies
scraped by one Prometheus never mix; ``max by`` (not ``sum``) across series, because
two exporter replicas of one Redis expose the same counters. Alerting rules compare
those with the policy's thresholds: a hit-rate rule per namespace (its own threshold,
critical namespaces at the critical one, severity critical), the stale share, p99 read
latency, used memory, Redis unreachable and the exporter down. A namespace with fewer
than ``min_requests`` requests in the window never alerts (a ratio of nothing is no
finding), and no traffic at all is no ratio (0/0 is NaN, which compares false).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cachectl.policy.model import Policy


@dataclass(frozen=True)
class RuleOptions:
    """How the rules read the metrics: the scrape job, the rate window and ``for:`` (ms)."""

    job: str = "cachectl"
    window_ms: int = 5 * 60_000
    for_ms: int = 5 * 60_000
    policy_file: str = "cachectl.yaml"  # named in the runbook lines


def prom_duration(ms: int) -> str:
    """Milliseconds as a Prometheus duration: 300000 -> ``5m``, 1500 -> ``1500ms``."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def number(value: float) -> str:
    """A threshold as PromQL writes it: 0.95, 0.05, 100."""
    return f"{value:.10g}"


def label_value(text: str) -> str:
    """A PromQL string literal's inside (backslash and double quote escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def series_names(window_ms: int) -> dict[str, str]:
    """The recorded series' names for a window (``rate5m``, ``rate30s``...)."""
    w = prom_duration(window_ms)
    return {
        "requests": f"cachectl:namespace_requests:rate{w}",
        "hit_ratio": f"cachectl:namespace_hit_ratio:rate{w}",
        "stale_ratio": f"cachectl:namespace_stale_ratio:rate{w}",
        "load_mean": f"cachectl:namespace_load_seconds:mean{w}",
        "latency_p99": f"cachectl:read_latency_seconds:p99_{w}",
    }


def rule_groups(policy: Policy, name: str, opts: RuleOptions) -> list[dict[str, Any]]:
    """The rule groups (one) as plain data, ready to dump as YAML."""
    t = policy.thresholds
    job = f'job="{label_value(opts.job)}"'
    w = prom_duration(opts.window_ms)
    window_s = opts.window_ms / 1000
    s = series_names(opts.window_ms)
    pause = prom_duration(opts.for_ms)
    runbook = f"cachectl stats -p {opts.policy_file}"

    recording: list[dict[str, Any]] = [
        {"record": s["requests"],
         "expr": f"max by (job, cache_namespace, outcome) "
                 f"(rate(cachectl_namespace_requests_total{{{job}}}[{w}]))"},
        {"record": s["hit_ratio"],
         "expr": f'sum by (job, cache_namespace) ({s["requests"]}{{{job},outcome!="miss"}})\n'
                 f"/ sum by (job, cache_namespace) ({s['requests']}{{{job}}})"},
        {"record": s["stale_ratio"],
         "expr": f'sum by (job, cache_namespace) ({s["requests"]}{{{job},outcome=~"stale|fail_safe"}})\n'
                 f'/ sum by (job, cache_namespace) ({s["requests"]}{{{job},outcome!="miss"}})'},
        {"record": s["load_mean"],
         "expr": f"max by (job, cache_namespace) "
                 f"(rate(cachectl_namespace_load_seconds_sum{{{job}}}[{w}]))\n"
                 f"/ max by (job, cache_namespace) "
                 f"(rate(cachectl_namespace_load_seconds_count{{{job}}}[{w}]))"},
        {"record": s["latency_p99"],
         "expr": f"histogram_quantile(0.99, max by (job, node, le) "
                 f"(rate(cachectl_read_latency_seconds_bucket{{{job}}}[{w}])))"},
    ]

    def enough(selector: str, outcomes: str = "") -> str:
        """requests (or hits) in the window >= min_requests, joined on the namespace."""
        return (f"and on (job, cache_namespace)\n"
                f"sum by (job, cache_namespace) ({s['requests']}{{{selector}{outcomes}}})"
                f" * {number(window_s)} >= {t.min_requests}")

    alerts: list[dict[str, Any]] = []
    for ns in policy.namespaces.values():
        sel = f'{job},cache_namespace="{label_value(ns.name)}"'
        kind = "critical namespace" if ns.critical else "namespace"
        alerts.append({
            "alert": "CachectlHitRateLow",
            "expr": f"{s['hit_ratio']}{{{sel}}} <= {number(ns.hit_rate)}\n{enough(sel)}",
            "for": pause,
            "labels": {"severity": "critical" if ns.critical else "warning",
                       "cache_namespace": ns.name, "threshold": number(ns.hit_rate)},
            "annotations": {
                "summary": f"Hit rate of {kind} {ns.name} is {{{{ $value | humanizePercentage }}}}, "
                           f"must exceed {ns.hit_rate:.0%}",
                "description": f"{ns.name} hit rate over {w} stayed at or below {ns.hit_rate:.0%} "
                               f"for {pause} (with at least {t.min_requests} requests in {w}); "
                               "every miss is a load on the origin.",
                "runbook": f"{runbook} -n {ns.name}: loads failing (refresh errors), keys evicted "
                           "or flushed, a TTL too short for the traffic; docs/observe.md#alerts",
            },
        })
    hits_only = ',outcome!="miss"'
    alerts += [
        {"alert": "CachectlStaleRatioHigh",
         "expr": f"{s['stale_ratio']}{{{job}}} > {number(t.max_stale_ratio)}\n"
                 f"{enough(job, hits_only)}",
         "for": pause,
         "labels": {"severity": "warning", "threshold": number(t.max_stale_ratio)},
         "annotations": {
             "summary": "{{ $labels.cache_namespace }} serves {{ $value | humanizePercentage }} of "
                        f"hits stale or fail-safe, above {t.max_stale_ratio:.0%}",
             "description": "Revalidation is not keeping up, or the origin is failing and "
                            "fail-safe values are served.",
             "runbook": f"{runbook} -n {{{{ $labels.cache_namespace }}}}: refresh errors and "
                        "load time; docs/observe.md#alerts",
         }},
    ]
    hot = any(ns.hot for ns in policy.namespaces.values())
    latency_ms = t.latency_hot_p99_ms if hot else t.latency_cached_p99_ms
    alerts += [
        {"alert": "CachectlReadLatencyHigh",
         "expr": f"{s['latency_p99']}{{{job}}} > {number(latency_ms / 1000)}",
         "for": pause,
         "labels": {"severity": "warning", "threshold": number(latency_ms / 1000)},
         "annotations": {
             "summary": "p99 read latency on {{ $labels.node }} is {{ $value | humanizeDuration }}, "
                        f"above {number(latency_ms)} ms ({'hot' if hot else 'cached'} data)",
             "description": "Server-side execution time of GET-like commands (LATENCY HISTOGRAM).",
             "runbook": f"{runbook}: big values, slow commands (SLOWLOG GET), swapping; "
                        "docs/observe.md#alerts",
         }},
        {"alert": "CachectlMemoryHigh",
         "expr": f"max by (job, node) (cachectl_memory_used_ratio{{{job}}}) > {number(t.memory_used_ratio)}",
         "for": pause,
         "labels": {"severity": "warning", "threshold": number(t.memory_used_ratio)},
         "annotations": {
             "summary": "Redis {{ $labels.node }} uses {{ $value | humanizePercentage }} of its "
                        f"memory limit, above {t.memory_used_ratio:.0%}",
             "description": "Against maxmemory (or the machine's memory when maxmemory is 0); "
                            "evictions follow.",
             "runbook": f"{runbook}: the largest namespaces by memory; docs/observe.md#alerts",
         }},
        {"alert": "CachectlRedisUnavailable",
         "expr": f"max by (job, instance, reason) (cachectl_up{{{job}}} == 0)",
         "for": pause,
         "labels": {"severity": "critical"},
         "annotations": {
             "summary": "cachectl cannot read Redis ({{ $labels.reason }})",
             "description": "The exporter is up but Redis did not answer within the scrape "
                            "deadline, or refused it.",
             "runbook": f"{runbook}: the exporter's stderr names the error; docs/observe.md#alerts",
         }},
        {"alert": "CachectlExporterDown",
         "expr": f"up{{{job}}} == 0",
         "for": pause,
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Prometheus cannot scrape cachectl stats --serve on {{ $labels.instance }}",
             "description": "No cache metrics, so no cache alerts either.",
             "runbook": "Is cachectl stats --serve running and bound to an address Prometheus "
                        "reaches (it binds loopback unless told)? docs/observe.md#alerts",
         }},
    ]
    for alert in alerts:
        alert["labels"] = {**alert["labels"], "cachectl_policy": name}
    return [{"name": f"cachectl.{name}", "rules": recording + alerts}]


def prometheus_rule(groups: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The same groups as a Kubernetes ``PrometheusRule`` (Prometheus Operator)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"cachectl-{name}",
            "labels": {"app.kubernetes.io/name": "cachectl", "app.kubernetes.io/part-of": name},
        },
        "spec": {"groups": groups},
    }
