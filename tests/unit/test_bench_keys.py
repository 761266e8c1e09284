"""Benchmark key ranges, distributions and configuration checks (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachectl.bench import BenchConfig, BenchMode, Distribution
from cachectl.bench.keys import bench_keys, make_value, synthetic_rows
from cachectl.bench.worker import WorkerPlan, build_batches, encode
from cachectl.errors import UsageError
from cachectl.keyspace import NamespaceMatcher
from cachectl.policy import load_policy


def _policy(tmp_path: Path, namespaces: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "p.yaml"
    path.write_text(f"version: 1\nredis: {{key_prefix: shop}}\nnamespaces:\n{namespaces}")
    return load_policy(path, env={})


def test_bench_keys_live_under_the_internal_prefix_and_match_no_namespace(
        tmp_path: Path) -> None:
    policy = _policy(tmp_path, '  product: {key: "product:{id}", ttl: 1h}\n'
                               '  search: {key: "search:{query:hash}:{page}", ttl: 1m}\n')
    matcher = NamespaceMatcher.from_policy(policy)
    for ns in policy:
        keys = bench_keys(policy, ns, synthetic_rows(ns, 50))
        assert len(keys) == 50
        assert all(k.startswith(f"shop:cachectl:bench:{ns.name}:".encode()) for k in keys)
        assert all(matcher.namespace_of(k) is None for k in keys)
    product = policy.namespace("product")
    assert bench_keys(policy, product, [{"id": "b0"}]) == [b"shop:cachectl:bench:product:product:b0"]


def test_no_template_can_claim_bench_keys(tmp_path: Path) -> None:
    from cachectl.errors import KeyParamError

    policy = _policy(tmp_path, '  p: {key: "p:{id}", ttl: 1h}\n'
                               '  anything: {key: "{a}:{b}:{c}:{d}:{e}", ttl: 1h}\n')
    # bench keys live under <prefix>:cachectl:, which the matcher gives to no namespace
    keys = bench_keys(policy, policy.namespace("p"), synthetic_rows(policy.namespace("p"), 3))
    matcher = NamespaceMatcher.from_policy(policy)
    assert keys and all(matcher.namespace_of(k) is None for k in keys)
    # and which no template renders into, a placeholder included
    with pytest.raises(KeyParamError, match="cachectl's own key space"):
        policy.namespace("anything").template.render(
            {"a": "cachectl", "b": "bench", "c": "p", "d": "p", "e": "b0"})


def test_distribution_parsing() -> None:
    assert str(Distribution.parse("uniform")) == "uniform"
    assert Distribution.parse("zipf") == Distribution("zipf", 1.0)
    assert Distribution.parse("ZIPF:0.8").s == 0.8
    for bad in ("zipf:0", "zipf:x", "pareto", "zipf:nan"):
        with pytest.raises(UsageError):
            Distribution.parse(bad)


def test_zipf_batches_favour_the_first_keys() -> None:
    reads = [encode("GET", f"k{i}") for i in range(100)]
    plan = WorkerPlan(endpoints=(), reads=reads, cdf=Distribution("zipf", 1.2).cdf(100),
                      pipeline=1)
    batches = [b for _, b, _, _ in build_batches(plan)]
    top = batches.count(reads[0])
    tail = batches.count(reads[99])
    assert top > 20 * max(tail, 1)


def test_mixed_batches_hold_reads_and_writes_at_the_ratio() -> None:
    reads = [encode("GET", f"k{i}") for i in range(10)]
    writes = [[encode("SET", f"k{i}", "v", "PX", 1000)] for i in range(10)]
    plan = WorkerPlan(endpoints=(), reads=reads, writes=writes, read_ratio=0.75, pipeline=8)
    batches = build_batches(plan)
    total_reads = sum(n for _, _, _, n in batches)
    share = total_reads / (8 * len(batches))
    assert 0.7 < share < 0.8
    assert all(b.count(b"*") == 8 == count for _, b, count, _ in batches)


def test_cluster_pipelines_are_split_per_owning_node() -> None:
    reads = [encode("GET", f"k{i}") for i in range(12)]
    plan = WorkerPlan(endpoints=(), reads=reads, pipeline=6, key_nodes=[i % 3 for i in range(12)])
    batches = build_batches(plan)
    assert {node for node, _, _, _ in batches} == {0, 1, 2}
    for node, payload, count, n_reads in batches:
        assert count == n_reads == payload.count(b"*2\r\n")
        wanted = {f"k{i}".encode() for i in range(12) if i % 3 == node}
        assert {line for line in payload.split(b"\r\n") if line.startswith(b"k")} <= wanted


def test_make_value_has_the_exact_size() -> None:
    assert len(make_value(300)) == 300
    assert make_value(1) == b'""'


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"existing": True, "modes": (BenchMode.MIXED,)}, "reads only"),
    ({"existing": True, "keep": True}, "--keep"),
    ({"pipeline": 0}, "at least 1"),
    ({"read_ratio": -0.1}, "between 0 and 1"),
    ({"requests": 0}, "at least 1"),
    ({"keys": 0}, "between 1 and"),
])
def test_config_refuses_what_cannot_run(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        BenchConfig(**kwargs).validate()  # type: ignore[arg-type]


def test_keys_beyond_the_cap_are_refused() -> None:
    with pytest.raises(UsageError, match="--keys must be between"):
        BenchConfig(keys=10_000_000).validate()
