"""The survey covers every primary of a Redis Cluster and matches MEMORY USAGE exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachectl.cli import main

cluster_support = pytest.importorskip("tests.support.cluster")


@pytest.mark.slow
def test_inspect_sums_every_primary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = cluster_support.RedisClusterFixture(tmp_path / "cluster", primaries=3,
                                                  replicas_per_primary=0).start()
    try:
        client = cluster.client()
        for i in range(3000):
            client.set(f"shop:product:{i}", "v" * (i % 30), px=3_600_000)
        for i in range(100):
            client.set(f"order:{i}:items", "x")
        expected = sum(client.memory_usage(f"shop:product:{i}") for i in range(3000))
        policy = tmp_path / "p.yaml"
        policy.write_text('version: 1\nredis: {key_prefix: shop}\nnamespaces:\n'
                          '  product: {key: "product:{id}", ttl: 1h}\n')
        for extra in ([], ["--no-lua"]):
            code = main(["inspect", "-p", str(policy), "--url", cluster.url, "--cluster",
                         "--json", *extra])
            doc = json.loads(capsys.readouterr().out)
            assert code == 0
            assert len(doc["nodes"]) == 3
            [row] = doc["namespaces"]
            assert (row["keys"], row["memory_bytes"]) == (3000, expected)
            assert doc["unmatched"][0]["pattern"] == "order:*:items"
            assert doc["unmatched"][0]["keys"] == 100
        code = main(["inspect", "-p", str(policy), "--url", cluster.url, "--cluster", "--json",
                     "shop:product:5"])
        [detail] = json.loads(capsys.readouterr().out)
        assert code == 0 and detail["namespace"] == "product" and detail["length"] == 5
    finally:
        cluster.stop()
