"""The connection layer on a real Redis Cluster (3 primaries + 3 replicas), and its faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cachectl.connection import build_settings, connect, node_name, primaries, redis_errors
from cachectl.errors import RedisUnavailableError
from tests.support import acl
from tests.support.cluster import RedisClusterFixture, cluster_fixture
from tests.support.redis_server import RedisServer
from tests.support.reliability import Recorder, reliability  # noqa: F401

cluster = pytest.fixture(scope="module")(cluster_fixture)


@pytest.fixture
def clean_cluster(cluster: RedisClusterFixture) -> Iterator[RedisClusterFixture]:
    cluster.wait_healthy()
    for node in cluster.primary_servers():
        node.client().flushall()
    yield cluster


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
        redis_server: RedisServer, reliability: Recorder) -> None:  # noqa: F811
    with pytest.raises(RedisUnavailableError) as info:
        _connect(redis_server.url)
    assert "is not a Redis Cluster node" in info.value.message
    assert "drop --cluster" in (info.value.hint or "")
    reliability.add("cluster-flag-on-standalone", area="cluster",
                    fault="--cluster pointed at a standalone server", command="connect",
                    did="exit 3: " + info.value.message,
                    verified="the hint says to drop --cluster")


def test_cluster_node_without_cluster_flag_asks_for_it(
        clean_cluster: RedisClusterFixture, reliability: Recorder) -> None:  # noqa: F811
    settings = build_settings(url_flag=clean_cluster.url, env={})
    client = connect(settings)
    with pytest.raises(RedisUnavailableError) as info, redis_errors(settings):
        for i in range(30):  # some key hashes to another node -> MOVED
            client.set(f"shop:product:{i}", b"v")
    assert "is a Redis Cluster node" in info.value.message
    assert "--cluster" in (info.value.hint or "")
    reliability.add("cluster-without-flag", area="cluster",
                    fault="a cluster node used as a standalone server (MOVED)", command="connect",
                    did="exit 3: " + info.value.message, verified="the hint says --cluster")


def test_acl_user_without_cluster_slots_gets_a_permission_message(
        clean_cluster: RedisClusterFixture, reliability: Recorder) -> None:  # noqa: F811
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
                                                  reliability: Recorder) -> None:  # noqa: F811
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
        clean_cluster: RedisClusterFixture, reliability: Recorder) -> None:  # noqa: F811
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
