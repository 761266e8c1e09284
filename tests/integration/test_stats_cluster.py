"""`cachectl stats` on a Redis Cluster of three primaries: per-node figures and exact totals."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cachectl.cli import main
from cachectl.connection import node_name, primaries
from cachectl.counter_format import write_buckets
from cachectl.policy import load_policy
from cachectl.stats import StatsOptions, collect_stats
from tests.integration.test_stats import NOW, FakeTime
from tests.support.cluster import RedisClusterFixture

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "stats.schema.json").read_text())
POLICY = """\
version: 1
redis: {key_prefix: t, cluster: true}
thresholds: {min_requests: 100}
defaults: {ttl: 10m}
namespaces:
  product: {key: "product:{id}", critical: true}
  price:   {key: "price:{sku}"}
"""


def test_every_primary_is_reported_and_the_total_adds_up(clean_cluster: RedisClusterFixture,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    policy = load_policy(path)
    client = clean_cluster.client()
    for node in primaries(client):
        node.flushdb()
    pipe = client.pipeline(transaction=False)
    for i in range(300):
        pipe.set(f"t:product:{i}", b"p", px=600_000)
    for i in range(120):
        pipe.set(f"t:price:{i}", b"1", px=600_000)
    pipe.execute()
    pipe = client.pipeline(transaction=False)
    write_buckets(pipe, policy.internal_prefix, {int(NOW // 60): {
        ("product", "fresh_hits"): 970, ("product", "misses"): 30}})
    pipe.execute()

    def traffic() -> None:  # 300 hits and 50 misses, spread over the three primaries by slot
        for i in range(300):
            client.get(f"t:product:{i}")
        for i in range(50):
            client.get(f"t:product:missing-{i}")

    fake = FakeTime(traffic)
    report = collect_stats(client, policy, StatsOptions(interval_s=1.0), clock=fake.clock,
                           wall_clock=fake.wall_clock, sleep=fake.sleep)
    assert len(report.nodes) == 3
    assert {n.node for n in report.nodes} == {node_name(n) for n in primaries(client)}
    assert all(n.hits > 0 for n in report.nodes)  # every primary served some of the reads
    assert (report.total.hits, report.total.misses) == (300, 50)
    assert report.total.hit_rate == 300 / 350
    assert report.total.used_memory_bytes == sum(n.used_memory_bytes for n in report.nodes)
    assert report.total.latency is not None and report.total.latency.calls == 350
    product = next(ns for ns in report.namespaces if ns.namespace == "product")
    assert product.hit_rate == 0.97
    assert product.keys is not None and (product.keys.keys, product.keys.exact) == (300, True)
    price = next(ns for ns in report.namespaces if ns.namespace == "price")
    assert price.keys is not None and price.keys.keys == 120
    # memory is judged per primary (one full node is a problem even when the total is not)
    memory_checks = [c for c in report.checks if c.check == "memory_used_ratio"]
    assert sorted(c.node for c in memory_checks if c.node) == sorted(n.node for n in report.nodes)
    client.close()


def test_cli_with_cluster_flag_reports_three_nodes(clean_cluster: RedisClusterFixture, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    code = main(["stats", "-p", str(path), "--url", clean_cluster.url, "--cluster", "--interval", "200ms",
                 "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert code in (0, 1), err
    assert len(doc["server"]["nodes"]) == 3 and doc["server"]["total"]["node"] == "total"


def test_the_primaries_are_read_at_the_same_time(clean_cluster: RedisClusterFixture,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Each primary's snapshots and key sample wait at a barrier for the other two: read one
    primary after the other, the first would wait alone until the barrier broke."""
    from cachectl import stats as stats_module
    from cachectl.stats import namespaces as ns_module

    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    client = clean_cluster.client()
    pipe = client.pipeline(transaction=False)
    for i in range(600):
        pipe.set(f"t:product:{i}", b"p", px=600_000)
    pipe.execute()
    met = {"snapshot": threading.Barrier(3, timeout=10), "sample": threading.Barrier(3, timeout=10)}
    calls = {"snapshot": 0, "sample": 0}
    lock = threading.Lock()

    def together(kind: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                calls[kind] += 1
            met[kind].wait()
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(stats_module, "take_snapshot", together("snapshot", stats_module.take_snapshot))
    monkeypatch.setattr(ns_module, "_sample_node", together("sample", ns_module._sample_node))
    code = main(["stats", "-p", str(path), "--url", clean_cluster.url, "--interval", "100ms",
                 "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert calls == {"snapshot": 6, "sample": 3}  # before and after the interval; one sample
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)  # the document is unchanged
    product = next(n for n in doc["namespaces"] if n["namespace"] == "product")
    assert product["keys"]["keys"] == 600 and product["keys"]["exact"] is True
