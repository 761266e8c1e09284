"""The connection layer on a real Redis Cluster (3 primaries + 3 replicas), and its faults."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cachectl.connection import build_settings, connect, node_name, primaries, redis_errors
from cachectl.errors import RedisUnavailableError
from tests.support import acl, shop
from tests.support.cluster import RedisClusterFixture, cluster_fixture
from tests.support.redis_server import RedisServer
from tests.support.reliability import (
    CliRun,
    Recorder,
    assert_no_traceback,
    run_cli,
)

CACHECTL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "cachectl")

# its own cluster: these tests kill and fail over nodes
cluster = pytest.fixture(scope="module")(cluster_fixture)



def _connect(url: str, **kw: object) -> object:
    return connect(build_settings(url_flag=url, env={}, cluster=True, **kw))  # type: ignore[arg-type]


def test_primaries_returns_one_client_per_primary(clean_cluster: RedisClusterFixture) -> None:
    client = _connect(clean_cluster.url)
    nodes = primaries(client)
    expected = {f"127.0.0.1:{n.port}" for n in clean_cluster.primary_servers()}
    assert len(nodes) == 3
    assert {node_name(n) for n in nodes} == expected


def test_key_written_through_cluster_client_lands_on_its_slot_owner(
        clean_cluster: RedisClusterFixture) -> None:
    client = _connect(clean_cluster.url)
    keys = [f"shop:product:{i}".encode() for i in range(60)]
    for key in keys:
        client.set(key, b"v", px=60_000)  # type: ignore[attr-defined]
    owners = {clean_cluster.owner_of(k).port for k in keys}
    assert len(owners) == 3  # 60 keys spread over every primary
    per_node: dict[int, int] = {}
    for key in keys:
        owner = clean_cluster.owner_of(key)
        assert owner.client().get(key) == b"v"
        per_node[owner.port] = per_node.get(owner.port, 0) + 1
    # each primary holds exactly the keys of its slots, nothing more
    assert {n.port: n.client().dbsize() for n in clean_cluster.primary_servers()} == per_node


def test_cluster_flag_on_a_standalone_server_says_so(
        redis_server: RedisServer, reliability: Recorder) -> None:
    with pytest.raises(RedisUnavailableError) as info:
        _connect(redis_server.url)
    assert "is not a Redis Cluster node" in info.value.message
    assert "drop --cluster" in (info.value.hint or "")
    reliability.add("cluster-flag-on-standalone", area="cluster",
                    fault="--cluster pointed at a standalone server", command="connect",
                    did="exit 3: " + info.value.message,
                    verified="the hint says to drop --cluster")


def test_cluster_node_without_cluster_flag_gets_the_cluster_client(
        clean_cluster: RedisClusterFixture) -> None:
    client = connect(build_settings(url_flag=clean_cluster.url, env={}))
    assert len(primaries(client)) == 3  # not one node's third of the keyspace


def test_standalone_client_on_a_cluster_node_says_pass_cluster(
        clean_cluster: RedisClusterFixture, reliability: Recorder) -> None:
    from cachectl.connection import create_client

    settings = build_settings(url_flag=clean_cluster.url, env={})
    client = create_client(settings)  # what a library user building clients gets
    with pytest.raises(RedisUnavailableError) as info, redis_errors(settings):
        for i in range(30):  # some key hashes to another node -> MOVED
            client.set(f"shop:product:{i}", b"v")
    assert "is a Redis Cluster node" in info.value.message
    assert "--cluster" in (info.value.hint or "")
    reliability.add("cluster-without-flag", area="cluster",
                    fault="a cluster node used through a standalone client (MOVED)",
                    command="connection layer", did="exit 3: " + info.value.message,
                    verified="the hint says --cluster; connect() itself detects cluster mode "
                    "(HELLO) and returns the cluster client")


def test_commands_without_cluster_flag_still_cover_every_node(
        seeded: RedisClusterFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        reliability: Recorder) -> None:
    policy = shop.write_policy(tmp_path)  # no redis.cluster in the policy, no --cluster
    run = _cli(["inspect", "--json"], seeded, policy, capsys)
    assert run.code == 0, run.text
    counts = {ns["namespace"]: ns["keys"] for ns in json.loads(run.out)["namespaces"]}
    assert counts["product"] == shop.PRODUCTS
    run = _cli(["flush", "-n", "product", "--yes", "--json"], seeded, policy, capsys)
    assert run.code == 0 and json.loads(run.out)["removed"] == shop.PRODUCTS
    assert not shop.product_keys() & _present(seeded)
    reliability.add("cluster-url-without-cluster-flag", area="cluster",
                    fault="a cluster node's URL without --cluster or redis.cluster",
                    command="inspect; flush -n product --yes",
                    did="detected cluster mode and scanned all 3 primaries",
                    verified="all 40 product keys counted, then all removed (before: one node's "
                    "third, exit 0)")


def test_acl_user_without_cluster_slots_gets_a_permission_message(
        clean_cluster: RedisClusterFixture, reliability: Recorder) -> None:
    nodes = [n.client() for n in clean_cluster.live_nodes()]
    user = acl.set_user(nodes, "no-slots", "pw-no-slots", acl.family_rule("warm"))
    url = user.url("127.0.0.1", clean_cluster.live_nodes()[0].port)
    with pytest.raises(RedisUnavailableError) as info:
        _connect(url)
    assert "permission denied" in info.value.message
    assert "cluster|slots" in info.value.message
    assert "pw-no-slots" not in info.value.message
    reliability.add("cluster-acl-no-cluster-slots", area="acl",
                    fault="ACL user without CLUSTER SLOTS on a cluster", command="connect",
                    did="exit 3: " + info.value.message,
                    verified="the message names the missing permission; no password printed")


def test_acl_family_rule_with_cluster_extras_connects(clean_cluster: RedisClusterFixture) -> None:
    nodes = [n.client() for n in clean_cluster.live_nodes()]
    user = acl.family_user(nodes, "warm", cluster=True)
    client = _connect(user.url("127.0.0.1", clean_cluster.live_nodes()[0].port))
    client.set("shop:product:1", b"x", px=10_000)  # type: ignore[attr-defined]
    assert clean_cluster.owner_of("shop:product:1").client().pttl("shop:product:1") > 0


def test_unreachable_cluster_is_exit_3_with_hint(tmp_path: Path,
                                                  reliability: Recorder) -> None:
    from tests.support.redis_server import free_port

    with pytest.raises(RedisUnavailableError) as info:
        _connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1)
    assert "cannot use the cluster" in info.value.message
    assert info.value.hint
    reliability.add("cluster-unreachable", area="cluster", fault="no cluster node reachable",
                    command="connect", did="exit 3: " + info.value.message,
                    verified="a hint names what to check")


@pytest.mark.slow
def test_killed_primary_is_replaced_and_client_recovers(
        clean_cluster: RedisClusterFixture, reliability: Recorder) -> None:
    settings = build_settings(url_flag=clean_cluster.url, env={}, cluster=True, timeout_s=1)
    client = connect(settings)
    key = "shop:product:42"
    client.set(key, b"before", px=60_000)
    victim = clean_cluster.kill_primary(clean_cluster.owner_of(key))
    try:
        clean_cluster.wait_promoted(victim)
        with redis_errors(settings):
            client.set(key, b"after", px=60_000)  # the client follows the new owner
        assert clean_cluster.owner_of(key).port != victim.port
        assert clean_cluster.owner_of(key).client().get(key) == b"after"
        assert len(primaries(client)) == 3
        assert victim.port not in {int(node_name(n).rsplit(":", 1)[1]) for n in primaries(client)}
    finally:
        clean_cluster.restart_node(victim)
    reliability.add("cluster-primary-killed-client", area="cluster",
                    fault="SIGKILL of the primary owning a key", command="connection layer",
                    did="after promotion the same client wrote to the new owner",
                    verified="value on the promoted replica; primaries() lists the 3 live ones")


# -- the commands on the cluster ----------------------------------------------------------

@pytest.fixture(scope="module")
def cluster_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shop.write_policy(tmp_path_factory.mktemp("cluster-policy"), cluster=True)


@pytest.fixture
def seeded(clean_cluster: RedisClusterFixture) -> RedisClusterFixture:
    shop.seed(clean_cluster.client())
    # the seed spreads over every primary, so every command must visit all three
    per_node = [n.client().dbsize() for n in clean_cluster.primary_servers()]
    assert len(per_node) == 3 and all(per_node)
    return clean_cluster


def _cli(args: list[str], cluster: RedisClusterFixture, policy: Path,
         capsys: pytest.CaptureFixture[str]) -> CliRun:
    run = run_cli([*args, "--policy", str(policy), "--url", cluster.url], capsys)
    assert_no_traceback(run)
    return run


def _nodes(cluster: RedisClusterFixture) -> list[object]:
    return [n.client() for n in cluster.primary_servers()]


def _present(cluster: RedisClusterFixture) -> set[bytes]:
    return shop.all_keys(_nodes(cluster))  # type: ignore[arg-type]


def test_inspect_on_cluster_counts_every_primary(
        seeded: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = _cli(["inspect", "--json"], seeded, cluster_policy, capsys)
    assert run.code == 0, run.text
    doc = json.loads(run.out)
    counts = {ns["namespace"]: ns["keys"] for ns in doc["namespaces"]}
    assert counts == {"product": shop.PRODUCTS, "price": shop.PRICES, "cart": 1}
    assert doc["total_keys"] == shop.PRODUCTS + shop.PRICES + 1 + len(shop.FOREIGN)
    assert len(doc["nodes"]) == 3


def test_inspect_on_cluster_reports_per_node_figures(
        seeded: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(_cli(["inspect", "--json"], seeded, cluster_policy, capsys).out)
    per_node = {f"127.0.0.1:{n.port}": n.client().dbsize() for n in seeded.primary_servers()}
    assert isinstance(doc["nodes"][0], dict)
    assert {n["node"]: n["keys"] for n in doc["nodes"]} == per_node


def test_audit_on_cluster_scans_every_primary(
        seeded: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # a key without TTL on each primary: audit must find all three
    client = seeded.client()
    strays = []
    for i in range(200):
        key = f"shop:product:stray-{i}"
        if seeded.owner_of(key).port not in {seeded.owner_of(k).port for k in strays}:
            strays.append(key)
            client.set(key, b"{}")
        if len(strays) == 3:
            break
    run = _cli(["audit", "--json"], seeded, cluster_policy, capsys)
    assert run.code == 1, run.text
    doc = json.loads(run.out)
    no_ttl = [f for f in doc["findings"] if f["code"] == "no-ttl"]
    assert no_ttl and no_ttl[0]["count"] == 3
    assert {e["key"] for e in no_ttl[0]["examples"]} == set(strays)
    assert doc["scanned_keys"] == shop.PRODUCTS + shop.PRICES + 1 + len(shop.FOREIGN) + 3


def test_stats_on_cluster_gives_per_node_and_total_figures(
        seeded: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = _cli(["stats", "--interval", "100ms", "--json"], seeded, cluster_policy, capsys)
    assert run.code in (0, 1), run.text
    doc = json.loads(run.out)
    nodes = {n["node"]: n["keys"] for n in doc["server"]["nodes"]}
    assert nodes == {f"127.0.0.1:{n.port}": n.client().dbsize()
                     for n in seeded.primary_servers()}
    assert doc["server"]["total"]["keys"] == sum(nodes.values())
    by_ns = {ns["namespace"]: ns["keys"]["keys"] for ns in doc["namespaces"] if ns.get("keys")}
    assert by_ns["product"] == shop.PRODUCTS and by_ns["price"] == shop.PRICES


def test_flush_on_cluster_removes_exactly_the_namespace_on_every_node(
        seeded: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = _cli(["flush", "-n", "product", "--yes", "--json"], seeded, cluster_policy, capsys)
    assert run.code == 0, run.text
    doc = json.loads(run.out)
    assert (doc["matched"], doc["removed"]) == (shop.PRODUCTS, shop.PRODUCTS)
    present = _present(seeded)
    assert not shop.product_keys() & present
    assert shop.price_keys() <= present and b"shop:cart:u1" in present
    assert shop.foreign_intact(_nodes(seeded))


def test_soft_flush_on_cluster_moves_ttls_into_the_stale_band(
        seeded: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = _cli(["flush", "-n", "price", "--soft", "--yes", "--json"], seeded, cluster_policy,
               capsys)
    assert run.code == 0, run.text
    client = seeded.client()
    for key in shop.price_keys():
        assert 0 < client.pttl(key) <= 60_000  # stale band of price (stale: 1m)
    assert all(client.pttl(k) > 60_000 for k in shop.product_keys())


def test_bench_on_cluster_writes_to_slot_owners_and_cleans_up(
        seeded: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = _present(seeded)
    run = _cli(["bench", "-n", "product", "--requests", "200", "--warmup", "0s", "--keys", "30",
                "--json"], seeded, cluster_policy, capsys)
    assert run.code in (0, 1), run.text
    assert _present(seeded) == before


@pytest.mark.slow
def test_primary_killed_during_flush_then_rerun_is_exact(
        seeded: RedisClusterFixture, cluster_policy: Path, tmp_path: Path,
        reliability: Recorder) -> None:
    n = 3000
    shop.seed(seeded.client(), products=n)
    # replication is asynchronous: let every replica catch up before a primary is killed,
    # or the failover itself (not the flush) loses the newest keys
    for node in seeded.primary_servers():
        node.client().execute_command("WAIT", 1, 5000)
    victim = seeded.primary_servers()[1]
    proc = subprocess.Popen(
        [CACHECTL, "flush", "-n", "product", "--yes", "--rate", "1500", "--batch", "50",
         "--timeout", "1", "--json", "--policy", str(cluster_policy), "--url", seeded.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait(lambda: sum(c.dbsize() for c in _nodes(seeded)) < n)  # type: ignore[attr-defined]
        seeded.kill_primary(victim)
        _out, err = proc.communicate(timeout=60)
        seeded.wait_promoted(victim)
        assert proc.returncode in (0, 3), err
        assert "Traceback" not in err
        if proc.returncode == 3:
            did = "exit 3: " + _error_line(err).removeprefix("error: ")
            assert "hint:" in err and "rerun" in err
        else:
            did = "completed after the replica was promoted: exit 0"
        rerun = run_cli_subprocess(["flush", "-n", "product", "--yes", "--json", "--policy",
                                    str(cluster_policy), "--url", seeded.url])
        assert rerun.returncode == 0, rerun.stderr
        present = _present(seeded)
        assert not shop.product_keys(n) & present
        assert shop.price_keys() <= present and b"shop:cart:u1" in present
        assert shop.foreign_intact(_nodes(seeded))
    finally:
        if proc.poll() is None:
            proc.kill()
        seeded.restart_node(victim)
    reliability.add("cluster-primary-killed-mid-flush", area="cluster",
                    fault="SIGKILL of a cluster primary while flush was removing keys",
                    command="flush -n product --yes", did=did,
                    verified="a rerun removed every product key; prices, cart and foreign keys "
                    "untouched on every primary")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_PASSWORD")}


def run_cli_subprocess(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CACHECTL, *args], capture_output=True, text=True, env=_env(),
                          timeout=60, check=False)


def _wait(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_warm_on_cluster_writes_every_key_to_its_slot_owner(
        clean_cluster: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    clean_cluster.client().set("other:product:1", b"not ours")
    run = _cli(["warm", "-n", "product", "--json"], clean_cluster, cluster_policy, capsys)
    assert run.code == 0, run.text
    doc = json.loads(run.out)
    assert doc["written"] == shop.PRODUCTS and doc["failed"] == 0
    per_node: dict[int, int] = {}
    for key in shop.product_keys():
        owner = clean_cluster.owner_of(key)
        assert owner.client().pttl(key) > 0  # on the owner, with a TTL
        per_node[owner.port] = per_node.get(owner.port, 0) + 1
    assert len(per_node) == 3
    counts = {n.port: n.client().dbsize() for n in clean_cluster.primary_servers()}
    other = clean_cluster.owner_of("other:product:1").port
    counts[other] -= 1
    assert counts == per_node  # nothing but the warmed keys (and the foreign one)


@pytest.mark.slow
def test_primary_killed_during_warm_then_rerun_is_exact(
        clean_cluster: RedisClusterFixture, tmp_path: Path,
        reliability: Recorder) -> None:
    n = 4000
    policy = shop.write_policy(tmp_path / "big", cluster=True, products=n)
    client = clean_cluster.client()
    for key, value in shop.FOREIGN.items():
        client.set(key, value)
    for node in clean_cluster.primary_servers():  # replicas catch up before a primary dies
        node.client().execute_command("WAIT", 1, 5000)
    victim = clean_cluster.primary_servers()[2]
    proc = subprocess.Popen(
        [CACHECTL, "warm", "-n", "product", "--rate", "1500", "--timeout", "1", "--json",
         "--policy", str(policy), "--url", clean_cluster.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait(lambda: sum(c.dbsize() for c in _nodes(clean_cluster)) > 300)  # type: ignore[attr-defined]
        clean_cluster.kill_primary(victim)
        out, err = proc.communicate(timeout=60)
        clean_cluster.wait_promoted(victim)
        assert "Traceback" not in err
        if proc.returncode == 3:
            did = "exit 3: " + _error_line(err).removeprefix("error: ")
        else:
            # finished, possibly with rows refused while the slot had no owner
            assert proc.returncode in (0, 1), err
            doc = json.loads(out)
            did = (f"completed after promotion: exit {proc.returncode}, "
                   f"{'some' if doc['failed'] else 'no'} rows reported failed")
        rerun = run_cli_subprocess(["warm", "-n", "product", "--json", "--policy", str(policy),
                                    "--url", clean_cluster.url])
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["failed"] == 0
        present = _present(clean_cluster)
        assert shop.product_keys(n) <= present
        assert present - shop.product_keys(n) == set(shop.FOREIGN)  # nothing else written
        assert shop.foreign_intact(_nodes(clean_cluster))
        cluster_client = clean_cluster.client()
        assert all(cluster_client.pttl(k) > 0 for k in list(shop.product_keys(n))[:200])
    finally:
        if proc.poll() is None:
            proc.kill()
        clean_cluster.restart_node(victim)
    reliability.add("cluster-primary-killed-mid-warm", area="cluster",
                    fault="SIGKILL of a cluster primary while warm was writing",
                    command="warm -n product", did=did,
                    verified="a rerun wrote every row (failed: 0); every product key on its "
                    "slot owner with a TTL; nothing else written")


LEAST_PRIVILEGE_RUNS = {
    "inspect": [["inspect", "--json"], ["audit", "--json"]],
    "warm": [["warm", "-n", "product", "--json"]],
    "flush": [["flush", "-n", "price", "--yes", "--json"],
              ["flush", "-n", "product", "--soft", "--yes", "--json"]],
    "stats": [["stats", "--interval", "100ms", "--json"]],
    # cart also holds a key of every type (acl.seed_every_type): MEMORY USAGE, HGETALL, …
    "bench": [["bench", "-n", "cart", "--requests", "100", "--warmup", "0s", "--keys", "20",
               "--json"],
              ["bench", "-n", "cart", "--requests", "100", "--warmup", "0s", "--keys", "20",
               "--existing", "--json"]],
}


@pytest.mark.parametrize("family", sorted(LEAST_PRIVILEGE_RUNS))
def test_command_runs_on_cluster_as_its_least_privileged_user(
        family: str, seeded: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    runs = LEAST_PRIVILEGE_RUNS[family]
    if any(importlib.util.find_spec(f"cachectl.cli.{r[0]}") is None for r in runs):
        pytest.skip(f"cachectl {family} is not built yet")
    # one ACL per node: replicas too, so the user survives a failover
    user = acl.family_user([n.client() for n in seeded.live_nodes()], family, cluster=True)
    url = user.url("127.0.0.1", seeded.primary_servers()[0].port)
    typed = acl.seed_every_type(seeded.client())
    for argv in runs:
        run = run_cli([*argv, "--policy", str(cluster_policy), "--url", url], capsys)
        assert_no_traceback(run)
        assert run.code in (0, 1), run.text
        assert "permission" not in run.err
        assert user.password not in run.text
        if "--existing" in argv:  # it read the keys of every type
            assert json.loads(run.out)["runs"][0]["keys"] >= len(typed), run.out
    assert shop.foreign_intact(_nodes(seeded))


def test_library_on_cluster_reads_writes_and_invalidates(
        clean_cluster: RedisClusterFixture, cluster_policy: Path) -> None:
    if importlib.util.find_spec("cachectl.cache") is None:
        pytest.skip("the Cache library is not built yet")
    from cachectl import Cache

    nodes = [n.client() for n in clean_cluster.live_nodes()]
    user = acl.family_user(nodes, "library", cluster=True)
    url = user.url("127.0.0.1", clean_cluster.live_nodes()[0].port)
    cache = Cache.from_policy(cluster_policy, url=url, counters_interval_s=60, timeout_ms=500)
    try:
        values = [cache.get_or_load("product", lambda i=i: {"id": i}, id=i) for i in range(30)]
        hits = [cache.get_or_load("product", lambda: {"id": "miss"}, id=i) for i in range(30)]
        removed = cache.invalidate_tag("catalog")
        counters = cache.local_counters()["product"]
    finally:
        cache.close()
    assert values == hits == [{"id": i} for i in range(30)]
    assert counters.redis_errors == 0 and counters.fresh_hits == 30
    assert removed == 30
    assert not shop.product_keys(30) & _present(clean_cluster)


def test_library_detects_a_cluster_node_without_cluster_in_the_policy(
        clean_cluster: RedisClusterFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        reliability: Recorder) -> None:
    import asyncio

    from cachectl import AsyncCache, Cache

    policy = shop.write_policy(tmp_path)  # no redis.cluster: the URL names one node
    nodes = [n.client() for n in clean_cluster.live_nodes()]
    user = acl.family_user(nodes, "library", cluster=True)
    url = user.url("127.0.0.1", clean_cluster.live_nodes()[0].port)
    with Cache.from_policy(policy, url=url, env={}, counters_interval_s=60,
                           timeout_ms=500) as cache:
        assert hasattr(cache.client, "get_primaries")  # the cluster client, not one node's
        values = [cache.get_or_load("product", lambda i=i: {"id": i}, id=i) for i in range(30)]
        hits = [cache.get_or_load("product", lambda: "loaded again", id=i) for i in range(30)]
        cache.flush_counters()
        local = cache.local_counters()["product"]
    assert values == hits == [{"id": i} for i in range(30)]
    assert local.redis_errors == 0  # before: MOVED for two thirds of the keys
    for i in range(30):  # each key on the primary that owns its slot
        assert clean_cluster.owner_of(f"shop:product:{i}").client().pttl(
            f"shop:product:{i}") > 0

    async def run_async() -> list[object]:
        async with AsyncCache.from_policy(policy, url=url, env={}, counters=False,
                                          timeout_ms=500) as acache:
            got = [await acache.get_or_load("cart", lambda u=u: [u], user_id=u)
                   for u in ("a", "b", "c", "d", "e", "f")]
            return [got, acache.local_counters().get("cart")]

    got, _ = asyncio.run(run_async())
    assert got == [[u] for u in ("a", "b", "c", "d", "e", "f")]
    assert {f"shop:cart:{u}".encode() for u in "abcdef"} <= _present(clean_cluster)

    # the counters the library wrote (spread over the nodes by slot) are what stats reads
    stats_user = acl.family_user(nodes, "stats", cluster=True)
    run = run_cli(["stats", "--interval", "100ms", "--json", "--policy", str(policy),
                   "--url", stats_user.url("127.0.0.1", clean_cluster.live_nodes()[0].port)],
                  capsys)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.text
    doc = json.loads(run.out)
    assert len(doc["server"]["nodes"]) == 3
    product = next(ns for ns in doc["namespaces"] if ns["namespace"] == "product")
    assert (product["misses"], product["fresh_hits"], product["redis_errors"]) == (30, 30, 0)
    reliability.add("cluster-library-without-cluster-flag", area="cluster",
                    fault="Cache.from_policy / AsyncCache.from_policy given one cluster node's "
                    "URL, no redis.cluster in the policy", command="Cache library",
                    did="detected cluster mode (HELLO) and used the cluster client",
                    verified="30 loads and 30 hits without a Redis error, each key on its slot "
                    "owner; stats (3 nodes) read the library's counters: 30 misses, 30 hits")


def _cluster_used(primaries: list[RedisServer]) -> set[str]:
    """Commands the primaries ran since CONFIG RESETSTAT (primary_servers() sends ROLE:
    the caller lists them before resetting)."""
    from tests.integration.test_topology_acl import NOISE

    used: set[str] = set()
    for node in primaries:
        used |= {n.removeprefix("cmdstat_") for n in node.client().info("commandstats")}
    return used - NOISE - {"replconf"}  # the replicas' acknowledgements, not cachectl's


@pytest.mark.parametrize("family", ["bench", "flush", "inspect", "stats", "warm"])
def test_cluster_rule_allows_exactly_what_every_invocation_uses(
        family: str, clean_cluster: RedisClusterFixture, cluster_policy: Path,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    """The documented rule (docs/topologies.md) plus ``+cluster|slots +command``, for every invocation the
    standalone ACL test checks (--no-lua, --soft, --history, --existing, …)."""
    from tests.integration.test_topology_acl import FAMILY_RUNS, _perm_names

    runs = FAMILY_RUNS[family]
    if any(importlib.util.find_spec(f"cachectl.cli.{r[0]}") is None for r in runs):
        pytest.skip(f"cachectl {family} is not built yet")
    nodes = [n.client() for n in clean_cluster.live_nodes()]
    user = acl.family_user(nodes, family, cluster=True)
    user_url = user.url("127.0.0.1", clean_cluster.primary_servers()[0].port)

    def run_all(url: str) -> tuple[list[int], set[str], list[str]]:
        codes, used, errs = [], set(), []
        for argv in runs:
            primaries = clean_cluster.primary_servers()
            for node in primaries:
                node.client().flushall()
                node.client().script_flush()  # so a run that needs SCRIPT LOAD sends it
            seeder = clean_cluster.client()
            shop.seed(seeder)
            acl.seed_every_type(seeder)
            seeder.close()
            for node in primaries:
                node.client().config_resetstat()
            run = run_cli([*argv, "--policy", str(cluster_policy), "--url", url], capsys)
            assert_no_traceback(run)
            codes.append(run.code)
            used |= _cluster_used(primaries)
            errs.append(run.err)
        return codes, used, errs

    admin_codes, used, errs = run_all(clean_cluster.url)
    assert all(c in (0, 1) for c in admin_codes), errs
    allowed = _perm_names(tuple(acl.family_rule(family, cluster=True)))
    assert used <= allowed, f"{family} sends on a cluster what its rule lacks: " \
                            f"{sorted(used - allowed)}"
    # PING and CLIENT SETNAME (acl.CONNECT) are not counted, as in the standalone test
    specific = _perm_names((*(acl.FAMILY_RULES[family] or ()), *acl.CLUSTER_EXTRA))
    # SCRIPT LOAD follows only a NOSCRIPT, so whether a run sends it depends on the node's
    # script cache (once, on a cluster that had been through the failover tests, it was
    # not sent despite the SCRIPT FLUSH above); a cold cache needs it, so the rule keeps it
    unused = specific - used - {"script|load"}
    assert not unused, f"{family}'s cluster rule grants unused: {sorted(unused)}"
    user_codes, _, user_errs = run_all(user_url)
    assert not any("permission" in e for e in user_errs), user_errs
    assert not any(user.password in e for e in user_errs)
    if family == "bench":  # its verdict (exit 0/1) depends on latency on a loaded machine
        assert all(c in (0, 1) for c in user_codes), user_errs
    else:
        assert user_codes == admin_codes, user_errs
    assert shop.foreign_intact(_nodes(clean_cluster))
    reliability.add(f"cluster-acl-{family}-least-privilege", area="acl",
                    fault=f"cluster: ACL user holding only the {family} rule plus "
                    "+cluster|slots +command, on every node",
                    command="; ".join(" ".join(a) for a in runs),
                    did="same exit codes as the admin user",
                    verified="the rule allows every command the primaries saw (INFO "
                    "commandstats on each) and grants nothing unused")


def test_cluster_library_rule_allows_exactly_what_the_cache_sends(
        clean_cluster: RedisClusterFixture, cluster_policy: Path,
        reliability: Recorder) -> None:
    from tests.integration.test_topology_acl import _library_workload, _perm_names

    primaries = clean_cluster.primary_servers()
    admin = clean_cluster.client()
    expected = [{"id": i} for i in range(5)] * 2 + [{"id": "old"}, {"id": "new"}, 5]
    for node in primaries:
        node.client().script_flush()
        node.client().config_resetstat()
    _, _, values = _library_workload(cluster_policy, clean_cluster.url, admin)
    assert values == expected
    used = _cluster_used(primaries)
    allowed = _perm_names(tuple(acl.family_rule("library", cluster=True)))
    assert used <= allowed, f"the library sends on a cluster what its rule lacks: " \
                            f"{sorted(used - allowed)}"
    specific = _perm_names((*(acl.FAMILY_RULES["library"] or ()), *acl.CLUSTER_EXTRA))
    assert specific <= used, f"the library's cluster rule grants unused: {sorted(specific - used)}"

    for node in primaries:
        node.client().flushall()
    user = acl.family_user([n.client() for n in clean_cluster.live_nodes()], "library",
                           cluster=True)
    counters, breaker, values = _library_workload(
        cluster_policy, user.url("127.0.0.1", primaries[0].port), admin)
    assert admin.get("shop:price:a") is None  # cache.invalidate really removed it
    assert values == expected
    assert breaker == "closed"
    assert all(c.redis_errors == 0 and c.refresh_errors == 0  # type: ignore[attr-defined]
               for c in counters.values())

    import asyncio

    from cachectl import AsyncCache

    async def with_l1() -> list[object]:  # the async writes also PUBLISH for the L1s
        async with AsyncCache.from_policy(cluster_policy,
                                          url=user.url("127.0.0.1", primaries[0].port),
                                          l1_max_items=100, counters_interval_s=60,
                                          timeout_ms=500) as acache:
            stored = [await acache.set("price", i, sku=f"a{i}") for i in range(6)]
            removed = [await acache.invalidate("price", sku=f"a{i}") for i in range(3)]
            price = acache.local_counters().get("price")  # set/invalidate count errors only
            return [stored, removed, price.redis_errors if price else 0]

    assert asyncio.run(with_l1()) == [[True] * 6, [True] * 3, 0]
    # invalidated on their slot owners (the async cluster pipeline's unlink did nothing)
    assert [admin.get(f"shop:price:a{i}") for i in range(6)] == [None] * 3 + [b"3", b"4", b"5"]
    admin.close()
    reliability.add("cluster-acl-library-least-privilege", area="acl",
                    fault="cluster: ACL user holding only the library rule plus "
                    "+cluster|slots +command", command="Cache library",
                    did="no Redis error, breaker closed, stale key revalidated (before: "
                    "Cache with an L1 raised RedisClusterException, PUBLISH in a cluster "
                    "pipeline)",
                    verified="the rule allows every command the primaries saw and nothing "
                    "else")
