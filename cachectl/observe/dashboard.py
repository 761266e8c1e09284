"""A Grafana dashboard (JSON model) from a policy: the server panels, then a row per namespace.

Every query reads the metrics ``cachectl stats --serve`` exposes directly (not the
recording rules), so the dashboard works before the rules are loaded. The data source
is a dashboard variable (``$datasource``), so one file imports into any Grafana.
"""

from __future__ import annotations

from typing import Any

from cachectl.observe.rules import RuleOptions, label_value, number, prom_duration
from cachectl.policy.model import Policy

SCHEMA_VERSION = 39  # Grafana 10.4+
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24


class _Layout:
    """Places panels left to right in rows of 24 columns, top to bottom."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.y = 0
        self.x = 0
        self.row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "id": len(self.panels) + 1,
                            "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": self.y}})
        self.y += 1

    def add(self, panel: dict[str, Any], w: int, h: int = 8) -> None:
        if self.x + w > WIDTH:
            self._newline()
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)

    def _newline(self) -> None:
        self.y += self.row_height
        self.x = 0
        self.row_height = 0


def _target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def _timeseries(title: str, targets: list[dict[str, Any]], unit: str, *,
                description: str = "", stack: bool = False, threshold: float | None = None,
                max_value: float | None = None,
                right_axis: tuple[str, str] | None = None) -> dict[str, Any]:
    """A time series panel; ``right_axis`` (legend, unit) puts that series on a second axis."""
    custom: dict[str, Any] = {"drawStyle": "line", "fillOpacity": 40 if stack else 10,
                              "lineWidth": 1, "showPoints": "never",
                              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if threshold is not None:
        custom["thresholdsStyle"] = {"mode": "line"}
        steps.append({"color": "red", "value": threshold})
    defaults: dict[str, Any] = {"unit": unit, "custom": custom,
                                "thresholds": {"mode": "absolute", "steps": steps}}
    if max_value is not None:
        defaults["max"] = max_value
        defaults["min"] = 0
    overrides = [] if right_axis is None else [{
        "matcher": {"id": "byName", "options": right_axis[0]},
        "properties": [{"id": "unit", "value": right_axis[1]},
                       {"id": "custom.axisPlacement", "value": "right"}]}]
    return {"type": "timeseries", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": [
                {**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
            "fieldConfig": {"defaults": defaults, "overrides": overrides},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "none"}}}


def dashboard(policy: Policy, name: str, opts: RuleOptions) -> dict[str, Any]:
    """The dashboard's JSON model as plain data."""
    t = policy.thresholds
    job = f'job="{label_value(opts.job)}"'
    w = prom_duration(opts.window_ms)
    layout = _Layout()

    layout.row("Redis")
    layout.add(_timeseries("Redis reachable", [
        _target(f"cachectl_up{{{job}}}", "{{node}}{{reason}}")], "none", max_value=1,
        description="1 when cachectl read the primary; 0 (with a reason) when Redis could not be read."),
        w=6)
    layout.add(_timeseries("Used memory / limit", [
        _target(f"cachectl_memory_used_ratio{{{job}}}", "{{node}}")], "percentunit",
        threshold=t.memory_used_ratio, max_value=1,
        description=f"Against maxmemory (or the machine's memory); the policy allows "
                    f"{t.memory_used_ratio:.0%}."), w=6)
    hot = any(ns.hot for ns in policy.namespaces.values())
    latency_ms = t.latency_hot_p99_ms if hot else t.latency_cached_p99_ms
    layout.add(_timeseries("p99 read latency (server)", [
        _target(f"histogram_quantile(0.99, sum by (node, le) "
                f"(rate(cachectl_read_latency_seconds_bucket{{{job}}}[{w}])))", "{{node}}")], "s",
        threshold=latency_ms / 1000,
        description=f"GET-like commands inside Redis; the policy allows {number(latency_ms)} ms "
                    f"({'hot' if hot else 'cached'} data)."), w=6)
    layout.add(_timeseries("Evicted and expired keys", [
        _target(f"sum by (node) (rate(cachectl_evicted_keys_total{{{job}}}[{w}]))", "evicted {{node}}"),
        _target(f"sum by (node) (rate(cachectl_expired_keys_total{{{job}}}[{w}]))", "expired {{node}}"),
    ], "ops"), w=6)

    for ns in policy.namespaces.values():
        sel = f'{job},cache_namespace="{label_value(ns.name)}"'
        flag = " (critical)" if ns.critical else ""
        layout.row(f"{ns.name}{flag}")
        layout.add(_timeseries(f"{ns.name}: hit rate", [
            _target(f'sum(rate(cachectl_namespace_requests_total{{{sel},outcome!="miss"}}[{w}]))\n'
                    f"/ sum(rate(cachectl_namespace_requests_total{{{sel}}}[{w}]))", "hit rate")],
            "percentunit", threshold=ns.hit_rate, max_value=1,
            description=f"Hits / requests over {w}; must exceed {ns.hit_rate:.0%}."), w=6)
        layout.add(_timeseries(f"{ns.name}: reads by outcome", [
            _target(f"sum by (outcome) (rate(cachectl_namespace_requests_total{{{sel}}}[{w}]))",
                    "{{outcome}}")], "reqps", stack=True,
            description="fresh, stale, fail_safe (hits) and miss, stacked."), w=6)
        layout.add(_timeseries(f"{ns.name}: loads and load time", [
            _target(f"sum(rate(cachectl_namespace_load_seconds_count{{{sel}}}[{w}]))", "loads/s"),
            _target(f"sum(rate(cachectl_namespace_load_seconds_sum{{{sel}}}[{w}]))\n"
                    f"/ sum(rate(cachectl_namespace_load_seconds_count{{{sel}}}[{w}]))",
                    "mean load time"),
        ], "ops", right_axis=("mean load time", "s"),
            description="Origin loads per second, and their mean duration (right axis)."), w=6)
        layout.add(_timeseries(f"{ns.name}: keys and memory", [
            _target(f"max(cachectl_namespace_keys{{{sel}}})", "keys"),
            _target(f"max(cachectl_namespace_memory_bytes{{{sel}}})", "bytes"),
        ], "short", right_axis=("bytes", "bytes"),
            description="From the exporter's sampled key scan (an estimate on large servers)."), w=6)

    return {
        "title": f"cachectl: {name}",
        "uid": f"cachectl-{name}"[:40],
        "description": f"Generated by cachectl observe from {opts.policy_file}; do not edit, regenerate.",
        "tags": ["cachectl", "redis"],
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "",
        "graphTooltip": 1,
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [{
            "name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
            "options": [],
        }]},
        "panels": layout.panels,
    }
