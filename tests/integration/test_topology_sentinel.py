"""The connection layer through Sentinel: discovery, wrong master name, failover."""

from __future__ import annotations

import pytest

from cachectl.connection import build_settings, connect, primaries, redis_errors
from cachectl.errors import RedisUnavailableError, UsageError
from tests.support.reliability import Recorder, reliability  # noqa: F401
from tests.support.sentinel import SentinelFixture, sentinel_fixture

sentinel = pytest.fixture(scope="module")(sentinel_fixture)


def _settings(deployment: SentinelFixture, master: str | None = None, **kw: object) -> object:
    return build_settings(url_flag=None, env={}, sentinels=tuple(deployment.sentinel_addrs),
                          master_name=master or deployment.master_name, **kw)  # type: ignore[arg-type]


def test_sentinel_finds_the_primary(sentinel: SentinelFixture) -> None:
    client = connect(_settings(sentinel))
    client.set("shop:product:1", b"x", px=10_000)
    assert sentinel.current_primary().client().get("shop:product:1") == b"x"
    assert primaries(client) == [client]


def test_sentinel_without_master_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--master-name"):
        build_settings(url_flag=None, env={}, sentinels=("127.0.0.1:26379",))


def test_unknown_master_name_is_exit_3(sentinel: SentinelFixture,
                                       reliability: Recorder) -> None:  # noqa: F811
    with pytest.raises(RedisUnavailableError) as info:
        connect(_settings(sentinel, master="nosuchmaster", timeout_s=1))
    assert "nosuchmaster" in info.value.message
    reliability.add("sentinel-unknown-master", area="sentinel",
                    fault="--master-name the Sentinels do not know", command="connect",
                    did="exit 3: " + info.value.message, verified="the message names the master")


def test_no_sentinel_reachable_is_exit_3(reliability: Recorder) -> None:  # noqa: F811
    from tests.support.redis_server import free_port

    settings = build_settings(url_flag=None, env={}, sentinels=(f"127.0.0.1:{free_port()}",),
                              master_name="mymaster", timeout_s=1)
    with pytest.raises(RedisUnavailableError) as info:
        connect(settings)
    assert "sentinel" in info.value.message
    reliability.add("sentinel-unreachable", area="sentinel", fault="no Sentinel reachable",
                    command="connect", did="exit 3: " + info.value.message,
                    verified="the message names the Sentinels")


@pytest.mark.slow
def test_client_follows_a_failover(sentinel: SentinelFixture,
                                   reliability: Recorder) -> None:  # noqa: F811
    settings = _settings(sentinel, timeout_s=1)
    client = connect(settings)
    client.set("shop:product:2", b"before", px=60_000)
    old = sentinel.current_primary()
    new = sentinel.failover()
    assert new.port != old.port
    with redis_errors(settings):  # type: ignore[arg-type]
        client.set("shop:product:2", b"after", px=60_000)
    assert new.client().get("shop:product:2") == b"after"
    reliability.add("sentinel-failover-client", area="sentinel",
                    fault="SENTINEL FAILOVER between two commands", command="connection layer",
                    did="the next command went to the new primary",
                    verified="value written on the promoted replica")
