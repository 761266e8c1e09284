"""cachectl bench on a Redis Cluster: each request goes to the primary owning its key."""

from __future__ import annotations

from pathlib import Path

from cachectl.bench import BenchConfig, BenchMode, endpoint_of, run_bench
from cachectl.policy import load_policy
from tests.support.cluster import RedisClusterFixture


def test_bench_routes_every_key_to_its_slot_owner_and_cleans_up(
        clean_cluster: RedisClusterFixture, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text('version: 1\nredis: {key_prefix: shop, cluster: true}\nnamespaces:\n'
                    '  price: {key: "price:{sku}", ttl: 5m}\n')
    client = clean_cluster.client()
    client.set("shop:price:b1", b"app", px=60_000)
    target = endpoint_of(client, url=clean_cluster.url)
    assert len(target.endpoints) == 3 and target.slot_nodes is not None
    result = run_bench(client, target, load_policy(path, env={}), BenchConfig(
        modes=(BenchMode.CACHED, BenchMode.MIXED), requests=600, duration_ms=None,
        warmup_ms=0, keys=60, value_size=32, pipeline=8, clients=2))
    for run in result.runs:
        # a key sent to the wrong node would come back as a MOVED error
        assert run.errors == 0 and run.misses == 0, run.first_error
        assert run.requests >= 600
    assert result.keys_written == result.keys_removed == 60
    nodes = {target.node_of(k.encode()) for k in (f"shop:cachectl:bench:price:price:b{i}"
                                                   for i in range(60))}
    assert nodes == {0, 1, 2}
    assert client.get("shop:price:b1") == b"app"
    assert list(client.scan_iter(match="shop:cachectl:bench:*")) == []
    client.close()
