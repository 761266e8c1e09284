"""The survey covers every primary of a Redis Cluster and matches MEMORY USAGE exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

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


def _held_by(node: redis.Redis, prefixes: dict[str, bytes]) -> dict[str, tuple[int, int]]:
    """What one primary really holds: per namespace (by key prefix), keys and MEMORY USAGE
    summed, read with a plain SCAN of that node alone; None collects the rest."""
    held: dict[str, tuple[int, int]] = {}
    for key in node.scan_iter(count=500):
        name = next((n for n, p in prefixes.items() if key.startswith(p)
                     and b":" not in key[len(p):]), "(unmatched)")
        keys, size = held.get(name, (0, 0))
        held[name] = (keys + 1, size + int(node.memory_usage(key)))
    return held


@pytest.mark.slow
def test_inspect_and_audit_break_each_namespace_down_per_primary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = cluster_support.RedisClusterFixture(tmp_path / "cluster", primaries=3,
                                                  replicas_per_primary=0).start()
    try:
        client = cluster.client()
        for i in range(2000):
            client.set(f"shop:product:{i}", "v" * (i % 40), px=3_600_000)
        for i in range(700):
            client.set(f"shop:price:{i}", str(i), px=600_000)
        for i in range(50):
            client.set(f"order:{i}:items", "x")
        client.set("shop:cart:only-one", "c", px=600_000)  # a namespace on one node only
        policy = tmp_path / "p.yaml"
        policy.write_text('version: 1\nredis: {key_prefix: shop}\nnamespaces:\n'
                          '  product: {key: "product:{id}", ttl: 1h}\n'
                          '  price: {key: "price:{sku}", ttl: 10m}\n'
                          '  cart: {key: "cart:{user}", ttl: 10m}\n'
                          '  empty: {key: "empty:{id}", ttl: 10m}\n')
        prefixes = {"product": b"shop:product:", "price": b"shop:price:", "cart": b"shop:cart:",
                    "empty": b"shop:empty:"}
        truth = {f"127.0.0.1:{s.port}": _held_by(s.client(), prefixes)
                 for s in cluster.primary_servers()}
        assert sum(1 for held in truth.values() if "cart" in held) == 1

        for command in (["inspect"], ["inspect", "--no-lua"], ["audit"]):
            code = main([*command, "-p", str(policy), "--url", cluster.url, "--cluster",
                         "--json"])
            doc = json.loads(capsys.readouterr().out)
            assert code == 0, command
            assert {n["node"] for n in doc["nodes"]} == set(truth)
            for node in doc["nodes"]:
                held = truth[node["node"]]
                got = {r["namespace"]: (r["keys"], r["memory_bytes"]) for r in node["namespaces"]}
                assert list(got) == ["product", "price", "cart", "empty"]  # policy order
                assert got == {n: held.get(n, (0, 0)) for n in prefixes}, (command, node["node"])
                unmatched = node["unmatched"]
                assert (unmatched["keys"], unmatched["memory_bytes"]) == held["(unmatched)"]
                assert node["keys"] == sum(k for k, _ in held.values())
                assert node["estimated"] is False
            if command[0] == "inspect":
                # the per-node figures add up to the totals
                for row in doc["namespaces"]:
                    parts = [next(r for r in n["namespaces"] if r["namespace"] == row["namespace"])
                             for n in doc["nodes"]]
                    assert sum(p["keys"] for p in parts) == row["keys"]
                    assert sum(p["memory_bytes"] for p in parts) == row["memory_bytes"]
                assert sum(n["unmatched"]["keys"] for n in doc["nodes"]) == sum(
                    p["keys"] for p in doc["unmatched"])

        # a sample estimates each node from its own keys; the estimates land near the truth
        code = main(["inspect", "-p", str(policy), "--url", cluster.url, "--cluster", "--json",
                     "--sample", "300"])
        doc = json.loads(capsys.readouterr().out)
        assert code == 0 and doc["mode"] == "sample"
        for node in doc["nodes"]:
            assert node["estimated"] is True
            product = next(r for r in node["namespaces"] if r["namespace"] == "product")
            real = truth[node["node"]]["product"][0]
            assert abs(product["keys"] - real) <= 0.25 * real, (node["node"], product, real)

        # the text view: one column per primary, one row per namespace
        code = main(["inspect", "-p", str(policy), "--url", cluster.url, "--cluster"])
        text = capsys.readouterr().out
        assert code == 0
        assert "per node" in text
        for name in truth:
            assert name in text
        code = main(["audit", "-p", str(policy), "--url", cluster.url, "--cluster"])
        text = capsys.readouterr().out
        assert "per node" in text and all(name in text for name in truth)
    finally:
        cluster.stop()


def _overlap(nodes: list[dict[str, float]], start: str, length: str) -> bool:
    """Whether every node's interval [start, start + length] shares a common moment: nodes
    worked one after the other cannot (each starts after the last one ended)."""
    return max(n[start] for n in nodes) < min(n[start] + n[length] for n in nodes)


def test_inspect_surveys_the_primaries_at_the_same_time(
        clean_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = clean_cluster.client()
    for chunk in range(0, 60_000, 10_000):
        pipe = client.pipeline(transaction=False)
        for i in range(chunk, chunk + 10_000):
            pipe.set(f"shop:product:{i}", "v" * (i % 30), px=3_600_000)
        pipe.execute()
    policy = tmp_path / "p.yaml"
    policy.write_text('version: 1\nredis: {key_prefix: shop}\nnamespaces:\n'
                      '  product: {key: "product:{id}", ttl: 1h}\n')
    for extra in ([], ["--no-lua"]):
        code = main(["inspect", "-p", str(policy), "--url", clean_cluster.url, "--json", *extra])
        doc = json.loads(capsys.readouterr().out)
        assert code == 0
        nodes = doc["nodes"]
        assert len(nodes) == 3 and doc["namespaces"][0]["keys"] == 60_000
        assert sum(n["namespaces"][0]["keys"] for n in nodes) == 60_000
        # each primary's survey is timed: they ran at the same time
        assert all(n["elapsed_s"] > 0 for n in nodes), nodes
        assert _overlap(nodes, "started_s", "elapsed_s"), (extra, nodes)
