"""flush on a real Redis Cluster: every primary, keys grouped per slot, nothing else touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachectl import flush
from cachectl.cli import main
from cachectl.connection import build_settings, connect
from cachectl.policy import Policy, load_policy
from tests.support.cluster import RedisClusterFixture

POLICY = """\
version: 1
redis: {key_prefix: shop}
defaults: {ttl: 10m}
namespaces:
  product:         {key: "product:{id}", ttl: 1h, stale: 10m}
  product_reviews: {key: "product:reviews:{id}", ttl: 30m, stale: 5m}
"""




@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    return path


def _seed(c: RedisClusterFixture, n: int = 600) -> tuple[list[bytes], list[bytes]]:
    client = c.client()
    products = [f"shop:product:{i}".encode() for i in range(n)]
    reviews = [f"shop:product:reviews:{i}".encode() for i in range(n // 2)]
    pipe = client.pipeline()
    for k in products + reviews:
        pipe.set(k, b"v", px=3_600_000)
    pipe.execute()
    return products, reviews


def _all_keys(c: RedisClusterFixture) -> set[bytes]:
    return {k for node in c.primary_servers() for k in node.client().scan_iter(count=1000)}


def test_hard_flush_reaches_every_primary(clean_cluster: RedisClusterFixture,
                                          policy_path: Path) -> None:
    products, reviews = _seed(clean_cluster)
    router = clean_cluster.client()
    owners = {router.get_node_from_key(k).port for k in products}
    assert len(owners) == 3  # the namespace really is spread over every primary
    policy: Policy = load_policy(policy_path)
    client = connect(build_settings(url_flag=clean_cluster.url, env={}, cluster=True))
    targets = flush.select_targets(policy, namespaces=["product"])
    plan = flush.plan_flush(client, policy, targets)
    assert plan.keys == len(products) and not plan.estimated
    result = flush.flush_namespaces(client, policy, targets, batch=50)
    assert result.changed == len(products) and result.skipped == 0
    assert _all_keys(clean_cluster) == set(reviews) | {flush.audit_key(policy).encode()}


def test_soft_flush_and_key_on_a_cluster(clean_cluster: RedisClusterFixture,
                                         policy_path: Path) -> None:
    products, reviews = _seed(clean_cluster, 90)
    policy = load_policy(policy_path)
    client = connect(build_settings(url_flag=clean_cluster.url, env={}, cluster=True))
    result = flush.flush_namespaces(
        client, policy, flush.select_targets(policy, namespaces=["product"], soft=True), soft=True)
    assert result.changed == 90
    c = clean_cluster.client()
    assert all(0 < c.pttl(k) <= 600_000 for k in products)
    assert all(c.pttl(k) > 3_000_000 for k in reviews)
    one = flush.flush_namespaces(
        client, policy, flush.select_targets(policy, key="product", key_params=["id=7"]))
    assert one.changed == 1 and not c.exists(b"shop:product:7")


def test_cli_flush_with_cluster_flag(clean_cluster: RedisClusterFixture, policy_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    products, reviews = _seed(clean_cluster, 300)
    code = main(["flush", "-p", str(policy_path), "--url", clean_cluster.url, "--cluster",
                 "--namespace", "product_reviews", "--yes", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["removed"] == len(reviews)
    assert _all_keys(clean_cluster) == set(products) | {b"shop:cachectl:audit"}


def test_the_primaries_are_flushed_at_the_same_time(clean_cluster: RedisClusterFixture,
                                                    policy_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Each primary's share is timed in the JSON (first SCAN, seconds worked): the three
    intervals overlap, which primaries flushed one after the other cannot do."""
    client = clean_cluster.client()
    for chunk in range(0, 45_000, 15_000):
        pipe = client.pipeline(transaction=False)
        for i in range(chunk, chunk + 15_000):
            pipe.set(f"shop:product:{i}", b"v", px=3_600_000)
            if i % 3 == 0:
                pipe.set(f"shop:product:reviews:{i}", b"r", px=3_600_000)
        pipe.execute()
    code = main(["flush", "-p", str(policy_path), "--url", clean_cluster.url, "--namespace",
                 "product", "--batch", "200", "--yes", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (doc["matched"], doc["removed"], doc["skipped"]) == (45_000, 45_000, 0)
    nodes = doc["nodes"]
    assert {n["node"] for n in nodes} == {f"127.0.0.1:{s.port}"
                                          for s in clean_cluster.primary_servers()}
    assert sum(n["removed"] for n in nodes) == 45_000
    assert all(n["matched"] == n["removed"] > 10_000 for n in nodes), nodes
    assert max(n["started_s"] for n in nodes) < min(n["started_s"] + n["seconds"]
                                                    for n in nodes), nodes
    assert len(_all_keys(clean_cluster)) == 15_000 + 1  # the reviews, and the audit stream
