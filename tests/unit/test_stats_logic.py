"""Pure logic of `cachectl stats`: latency histograms, the counter window, verdicts, Prometheus text."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cachectl.policy import parse_policy
from cachectl.render.console import jsonable
from cachectl.render.prometheus import prometheus_text, unavailable_text
from cachectl.stats.checks import namespace_checks, server_checks
from cachectl.stats.exporter import parse_address
from cachectl.stats.model import (
    NamespaceStats,
    NodeStats,
    ReadHistogram,
    ReadLatency,
    ScanSummary,
    StatsReport,
    Status,
)
from cachectl.stats.namespaces import window_minutes
from cachectl.stats.nodes import (
    histogram_quantile,
    merge_histograms,
    parse_histograms,
    subtract_histograms,
)

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "stats.schema.json").read_text())

POLICY = parse_policy("""
version: 1
redis: {key_prefix: t}
thresholds: {min_requests: 100}
defaults: {ttl: 1m}
namespaces:
  product: {key: "product:{id}", critical: true}
  price: {key: "price:{sku}"}
""", "p.yaml", {}).policy
assert POLICY is not None
T = POLICY.thresholds


def test_histogram_reply_parses_from_dict_and_flat_list() -> None:
    as_dict = {b"get": {b"calls": 4, b"histogram_usec": {8: 3, 16: 4}}}
    as_list = [b"get", [b"calls", 4, b"histogram_usec", [8, 3, 16, 4]]]
    assert parse_histograms(as_dict) == parse_histograms(as_list) == {"get": (4, {8: 3, 16: 4})}


def test_histogram_delta_uses_the_step_function_for_missing_buckets() -> None:
    before = {2: 10, 8: 12}
    after = {2: 10, 4: 15, 8: 20}
    # at 4 usec "before" had 10 (its value at 2): 5 new calls <= 4, 8 new calls <= 8
    assert subtract_histograms(after, before) == {2: 0, 4: 5, 8: 8}


def test_merged_histograms_add_cumulative_counts() -> None:
    assert merge_histograms([{1: 5, 4: 10}, {2: 3}]) == {1: 5, 2: 8, 4: 13}


def test_quantiles_interpolate_inside_power_of_two_buckets() -> None:
    hist = {1: 0, 1024: 50, 2048: 100}  # 50 calls in (512, 1024], 50 in (1024, 2048]
    assert histogram_quantile(hist, 0.5) == pytest.approx(1024)
    assert histogram_quantile(hist, 0.99) == pytest.approx(1024 + 0.98 * 1024)
    assert histogram_quantile({}, 0.5) is None
    assert histogram_quantile({8: 0}, 0.5) is None


def test_window_is_the_current_minute_and_the_ones_before() -> None:
    minutes = window_minutes(60 * 1000 + 59.9, 15 * 60)
    assert (minutes[0], minutes[-1], len(minutes)) == (986, 1000, 15)
    assert len(window_minutes(0, 61)) == 2


@pytest.mark.parametrize(("text", "expected"), [
    (":9877", ("127.0.0.1", 9877)), ("9877", ("127.0.0.1", 9877)), ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("[::1]:9100", ("::1", 9100)), ("0.0.0.0:9100", ("0.0.0.0", 9100)),
])
def test_serve_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


def _ns(**kw: object) -> NamespaceStats:
    base = NamespaceStats(
        namespace="product", in_policy=True, critical=True, hot=False, hit_rate_threshold=0.95,
        fresh_hits=0, stale_hits=0, fail_safe_hits=0, misses=0, refreshes=0, refresh_errors=0,
        redis_errors=0, loads=0, hits=0, requests=0, hit_rate=None, stale_ratio=None,
        origin_calls_saved=0, mean_load_ms=None, status=Status.PASS)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_quiet_namespace_is_too_little_traffic_not_a_failure() -> None:
    checks = namespace_checks(_ns(misses=99, requests=99, hit_rate=0.0), T)
    assert [(c.check, c.status) for c in checks] == [("hit_rate", Status.LOW_TRAFFIC)]


def test_hit_rate_must_exceed_the_threshold() -> None:
    at = namespace_checks(_ns(fresh_hits=95, hits=95, misses=5, requests=100, hit_rate=0.95,
                              stale_ratio=0.0), T)
    above = namespace_checks(_ns(fresh_hits=96, hits=96, misses=4, requests=100, hit_rate=0.96,
                                 stale_ratio=0.0), T)
    assert at[0].status is Status.FAIL and above[0].status is Status.PASS


def test_stale_share_above_max_fails_and_fail_safe_hits_warn() -> None:
    checks = {c.check: c for c in namespace_checks(
        _ns(fresh_hits=70, stale_hits=20, fail_safe_hits=10, hits=100, requests=100, hit_rate=1.0,
            stale_ratio=0.3, refresh_errors=3), T)}
    assert checks["stale_ratio"].status is Status.FAIL
    assert checks["refresh_errors"].status is Status.WARN


def _node(**kw: object) -> NodeStats:
    base = NodeStats(
        node="n:1", redis_version="7.0.15", uptime_s=10, interval_s=1.0, hits=900, misses=100,
        hit_rate=0.9, hits_since_restart=900, misses_since_restart=100, hit_rate_since_restart=0.9,
        ops_per_s=1000.0, commands=1000, used_memory_bytes=750, peak_memory_bytes=800,
        maxmemory_bytes=1000, system_memory_bytes=10**10, memory_limit_bytes=1000,
        memory_limit_source="maxmemory", used_memory_ratio=0.75, peak_memory_ratio=0.8,
        eviction_policy="allkeys-lru", evicted_keys=0, evicted_keys_per_s=0.0, expired_keys=0,
        expired_keys_per_s=0.0, fragmentation_ratio=1.1, rss_bytes=825, connected_clients=3,
        blocked_clients=0, maxclients=10000, keys=10, keys_with_ttl=10,
        latency=ReadLatency("latency_histogram", "interval", 10, 0.002, 0.02, 0.003, {"get": 10}),
        evicted_keys_since_restart=7, expired_keys_since_restart=9,
        read_histogram=ReadHistogram(calls=12, sum_usec=60, buckets=((1, 2), (4, 10), (16, 12))))
    return replace(base, **kw)  # type: ignore[arg-type]


def test_memory_over_the_threshold_fails_and_volatile_policy_without_ttls_warns() -> None:
    checks = {c.check: c for c in server_checks(
        _node(eviction_policy="volatile-lru", keys_with_ttl=4), T, hot=False, per_node=True)}
    assert checks["memory_used_ratio"].status is Status.FAIL
    assert checks["eviction_policy"].status is Status.WARN
    assert "6 keys have no TTL" in checks["eviction_policy"].message
    assert checks["read_latency_p99"].status is Status.PASS


def test_hot_data_is_judged_against_the_hot_latency_threshold() -> None:
    slow = _node(latency=ReadLatency("latency_histogram", "interval", 10, 1.0, 20.0, 2.0, {}))
    cached = {c.check: c for c in server_checks(slow, T, hot=False, per_node=True)}
    hot = {c.check: c for c in server_checks(slow, T, hot=True, per_node=True)}
    assert cached["read_latency_p99"].status is Status.PASS
    assert hot["read_latency_p99"].status is Status.FAIL


def _report() -> StatsReport:
    node = _node()
    ns = _ns(fresh_hits=96, hits=96, misses=4, requests=100, hit_rate=0.96, stale_ratio=0.0,
             origin_calls_saved=96, loads=4, mean_load_ms=12.5,
             counter_totals={"fresh_hits": 960, "stale_hits": 3, "misses": 40, "loads": 40,
                             "load_us": 500_000, "trace_dropped": 17})
    checks = tuple(server_checks(node, T, hot=False, per_node=True) + namespace_checks(ns, T))
    return StatsReport(
        generated_at="2026-01-01T00:00:00Z", target="redis://h:1/0", interval_s=1.0, window_s=900,
        window_minutes=(1, 15), nodes=(node,), total=replace(node, node="total"),
        namespaces=(ns,), checks=checks, scan=ScanSummary(enabled=False),
        status=Status.FAIL)


def test_prometheus_text_parses_with_help_type_and_labels() -> None:
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text(_report()))}
    assert families["cachectl_keyspace_hits"].type == "counter"
    assert families["cachectl_evicted_keys"].samples[0].value == 7
    assert families["cachectl_memory_used_ratio"].samples[0].labels == {"node": "n:1"}
    assert families["cachectl_memory_used_ratio"].samples[0].value == pytest.approx(0.75)
    requests = {s.labels["outcome"]: s.value for s in families["cachectl_namespace_requests"].samples}
    assert requests == {"fresh": 960, "stale": 3, "fail_safe": 0, "miss": 40}
    assert families["cachectl_namespace_requests"].type == "counter"
    load = {s.name: s.value for s in families["cachectl_namespace_load_seconds"].samples}
    assert load == {"cachectl_namespace_load_seconds_sum": 0.5, "cachectl_namespace_load_seconds_count": 40}
    dropped = families["cachectl_namespace_trace_dropped"]
    assert dropped.type == "counter" and dropped.documentation.startswith("Access-trace events")
    assert [(s.name, s.labels, s.value) for s in dropped.samples] == [
        ("cachectl_namespace_trace_dropped_total", {"cache_namespace": "product"}, 17)]
    hist = families["cachectl_read_latency_seconds"]
    assert hist.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in hist.samples if s.name.endswith("_bucket")}
    assert buckets == {"1e-06": 2, "4e-06": 10, "1.6e-05": 12, "+Inf": 12}
    assert families["cachectl_read_latency_p99_seconds"].samples[0].value == pytest.approx(2e-5)
    assert families["cachectl_checks_failed"].samples[0].value == 1
    assert families["cachectl_build_info"].samples[0].labels["version"]
    assert all(name.startswith("cachectl_") for name in families)


def test_verdict_gauges_are_ordered_so_above_zero_means_wrong() -> None:
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text(_report()))}
    verdicts = {(s.labels["check"], s.labels["cache_namespace"]): s.value
                for s in families["cachectl_check_verdict"].samples}
    assert verdicts[("memory_used_ratio", "")] == 2  # fail
    assert verdicts[("hit_rate", "product")] == 0  # pass
    assert families["cachectl_status"].samples[0].value == 2
    quiet = prometheus_text(replace(_report(), checks=tuple(
        namespace_checks(_ns(misses=9, requests=9, hit_rate=0.0), T)), status=Status.LOW_TRAFFIC))
    assert "cachectl_status -1" in quiet


def test_prometheus_label_values_are_escaped() -> None:
    report = _report()
    odd = replace(report, namespaces=(replace(report.namespaces[0], namespace='a"b\\c'),))
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text(odd))}
    assert families["cachectl_namespace_window_requests"].samples[0].labels["cache_namespace"] == 'a"b\\c'


def test_unavailable_reasons_are_a_bounded_set() -> None:
    families = {f.name: f for f in text_string_to_metric_families(unavailable_text("timeout"))}
    assert families["cachectl_up"].samples[0].labels == {"reason": "timeout"}
    assert families["cachectl_up"].samples[0].value == 0
    with pytest.raises(ValueError, match="unknown scrape failure reason"):
        unavailable_text("connection refused by 10.0.0.1")


def test_the_json_shape_matches_its_schema() -> None:
    doc = jsonable(_report())
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["schema_version"] == 1
    assert doc["namespaces"][0]["status"] == "pass"


def _render(width: int) -> str:
    from io import StringIO

    from rich.console import Console

    from cachectl.render.stats import stats_dashboard

    buf = StringIO()
    Console(file=buf, width=width, no_color=True, highlight=False).print(stats_dashboard(_report(), width))
    return buf.getvalue()


def test_dashboard_shows_figures_thresholds_and_findings() -> None:
    text = _render(160)
    assert "hit rate" in text and "> 80%" in text and "p99 < 50 ms" in text
    assert "product *" in text and "96.0%" in text and "96/0/0" in text and "PASS" in text
    assert "FAIL" in text and "used memory 75.0% of maxmemory >= 70.0%" in text
    assert "Result: FAIL" in text


def test_narrow_dashboard_drops_the_breakdown_columns() -> None:
    text = _render(100)
    assert "fresh/stale/fs" not in text and "saved" not in text
    assert "product *" in text and max(len(line) for line in text.splitlines()) <= 100


def test_before_redis_7_latency_is_a_commandstats_mean_and_p99_is_not_judged() -> None:
    from cachectl.stats.nodes import Snapshot, read_latency

    def snap(at: float, calls: int, usec: int) -> Snapshot:
        return Snapshot("n:1", at, {}, {"cmdstat_get": {"calls": calls, "usec": usec},
                                         "cmdstat_set": {"calls": 99, "usec": 9_999}}, None)

    lat = read_latency(snap(0.0, 100, 1_000), snap(1.0, 300, 5_000))
    assert lat is not None
    assert (lat.source, lat.basis, lat.calls, lat.p99_ms) == ("commandstats", "interval", 200, None)
    assert lat.mean_ms == pytest.approx(0.02)
    idle = read_latency(snap(0.0, 100, 1_000), snap(1.0, 100, 1_000))
    assert idle is not None and (idle.basis, idle.calls) == ("since_restart", 100)
    checks = {c.check: c for c in server_checks(_node(latency=lat), T, hot=False, per_node=True)}
    assert checks["read_latency_p99"].status is Status.NO_DATA
    assert "mean 0.020 ms" in checks["read_latency_p99"].message


def test_errors_are_reported_even_when_traffic_is_too_low_to_judge_rates() -> None:
    checks = namespace_checks(_ns(misses=5, requests=5, hit_rate=0.0, redis_errors=5), T)
    assert [(c.check, c.status) for c in checks] == [
        ("hit_rate", Status.LOW_TRAFFIC), ("redis_errors", Status.WARN)]


def test_the_hint_line_says_what_the_model_recommends_and_what_the_capture_dropped() -> None:
    from cachectl.stats.model import ModelHint
    from cachectl.stats.recommend import hint_line

    met = ModelHint(events=1200, sample_rate=0.01, threshold=0.9, ttl_s=300.0, hit_rate=0.934,
                    load_rate_per_s=2.5, memory_bytes=64 * 2**20, best_ttl_s=3600.0,
                    best_hit_rate=0.97, trace_dropped=0)
    assert hint_line("product", met) == ("product: model of the captured trace (1,200 events at 0.01): "
                                         "ttl 300s reaches 93.4%, maxmemory >= 64.0 MiB")
    missed = replace(met, ttl_s=None, hit_rate=None, load_rate_per_s=None, memory_bytes=None,
                     best_hit_rate=0.5, trace_dropped=12)
    assert hint_line("product", missed) == (
        "product: model of the captured trace (1,200 events at 0.01): no TTL reaches 90%; the best, "
        "3600s, reaches 50.0% (the library dropped 12 of its trace events: the load is under-represented)")
