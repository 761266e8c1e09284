"""The connection layer through Sentinel: discovery, wrong master name, failover."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import redis

from cachectl.connection import build_settings, connect, primaries, redis_errors
from cachectl.errors import RedisUnavailableError, UsageError
from tests.support import shop
from tests.support.reliability import (  # noqa: F401
    Recorder,
    assert_no_traceback,
    reliability,
    run_cli,
)
from tests.support.sentinel import SentinelFixture, failover_under_traffic, sentinel_fixture

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


# -- the commands and the library through Sentinel -----------------------------------------

@pytest.fixture(scope="module")
def sentinel_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shop.write_policy(tmp_path_factory.mktemp("sentinel-policy"))


@pytest.fixture
def primary(sentinel: SentinelFixture) -> redis.Redis:
    client = sentinel.current_primary().client()
    client.flushall()
    shop.seed(client)
    return client


def _sentinel_args(deployment: SentinelFixture) -> list[str]:
    args = []
    for addr in deployment.sentinel_addrs:
        args += ["--sentinel", addr]
    return [*args, "--master-name", deployment.master_name]


COMMANDS = {
    "inspect": ["inspect", "--json"],
    "audit": ["audit", "--json"],
    "stats": ["stats", "--interval", "100ms", "--json"],
    "warm": ["warm", "-n", "product", "--json"],
    "flush": ["flush", "-n", "price", "--yes", "--json"],
    "bench": ["bench", "-n", "cart", "--requests", "100", "--warmup", "0s", "--keys", "20",
              "--json"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_runs_through_sentinel(
        name: str, sentinel: SentinelFixture, primary: redis.Redis, sentinel_policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec(f"cachectl.cli.{name}") is None:
        pytest.skip(f"cachectl {name} is not built yet")
    primary.delete(*shop.product_keys())  # so warm has work to do
    if name != "warm":
        shop.seed(primary)
    run = run_cli([*COMMANDS[name], "--policy", str(sentinel_policy),
                   *_sentinel_args(sentinel)], capsys)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.text
    doc = json.loads(run.out)
    present = shop.all_keys([primary])
    assert shop.foreign_intact([primary])
    if name == "inspect":
        counts = {ns["namespace"]: ns["keys"] for ns in doc["namespaces"]}
        assert counts["product"] == shop.PRODUCTS
    elif name == "warm":
        assert shop.product_keys() <= present  # written on the primary the Sentinels named
        assert all(primary.pttl(k) > 0 for k in shop.product_keys())
    elif name == "flush":
        assert not shop.price_keys() & present and shop.product_keys() <= present
    elif name == "stats":
        assert doc["server"]["total"]["keys"] == primary.dbsize()
    elif name == "bench":
        assert not {k for k in present if b":cachectl:bench:" in k}  # cleaned up


@pytest.mark.slow
def test_library_serves_through_a_sentinel_failover_without_raising(
        sentinel: SentinelFixture, primary: redis.Redis, sentinel_policy: Path,
        reliability: Recorder) -> None:  # noqa: F811
    if importlib.util.find_spec("cachectl.cache") is None:
        pytest.skip("the Cache library is not built yet")
    from cachectl import Cache

    settings = build_settings(url_flag=None, env={}, sentinels=tuple(sentinel.sentinel_addrs),
                              master_name=sentinel.master_name)
    cache = Cache.from_policy(sentinel_policy, settings=settings, timeout_ms=200,
                              connect_timeout_ms=200, counters=False)
    primary.delete(*shop.product_keys())
    run = failover_under_traffic(cache, sentinel)
    assert not run.errors, run.errors
    assert not run.wrong
    # it kept serving after the switch
    assert run.calls_before > 0 and run.calls > run.calls_after_failover
    assert len(run.stored) >= 15, run.stored  # at most one failed write per pooled connection
    on_new = run.new.client()
    assert all(on_new.get(f"shop:price:after-{i}") == str(i).encode() for i in run.stored)
    reliability.add("sentinel-failover-library", area="sentinel",
                    fault="SENTINEL FAILOVER while Cache.get_or_load serves traffic",
                    command="Cache library", did="no exception reached the caller",
                    verified="every value returned was the loader's; traffic continued; every "
                    "write Cache.set reported stored is on the new primary")
