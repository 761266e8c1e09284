"""The connection layer through Sentinel: discovery, wrong master name, failover."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest
import redis

from cachectl.connection import build_settings, connect, primaries, redis_errors
from cachectl.errors import RedisUnavailableError, UsageError
from tests.support import shop
from tests.support.cache import wait_for
from tests.support.redis_server import free_port
from tests.support.reliability import (
    Recorder,
    assert_no_traceback,
    run_cli,
)
from tests.support.sentinel import (
    SentinelFixture,
    failover_under_traffic,
    library_connections,
    sentinel_fixture,
)

# its own deployment: these tests fail the primary over
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
                                       reliability: Recorder) -> None:
    with pytest.raises(RedisUnavailableError) as info:
        connect(_settings(sentinel, master="nosuchmaster", timeout_s=1))
    assert "nosuchmaster" in info.value.message
    reliability.add("sentinel-unknown-master", area="sentinel",
                    fault="--master-name the Sentinels do not know", command="connect",
                    did="exit 3: " + info.value.message, verified="the message names the master")


def test_no_sentinel_reachable_is_exit_3(reliability: Recorder) -> None:
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
                                   reliability: Recorder) -> None:
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
        reliability: Recorder) -> None:
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
    # the cache followed the Sentinels' +switch-master: nothing of its pool stayed on the
    # demoted primary (reads there lag; each write there failed once before this)
    assert run.followed >= 1 and run.left_on_old == 0, (run.followed, run.left_on_old)
    assert len(run.stored) == 20, run.stored
    on_new = run.new.client()
    assert all(on_new.get(f"shop:price:after-{i}") == str(i).encode() for i in run.stored)
    reliability.add("sentinel-failover-library", area="sentinel",
                    fault="SENTINEL FAILOVER while Cache.get_or_load serves traffic",
                    command="Cache library", did="no exception reached the caller",
                    verified="every value returned was the loader's; traffic continued; every "
                    "write Cache.set reported stored is on the new primary; the cache's pool "
                    "left the demoted primary on +switch-master and no write was lost")


@pytest.mark.slow
def test_library_follows_failovers_past_a_dead_sentinel(
        sentinel: SentinelFixture, primary: redis.Redis, sentinel_policy: Path) -> None:
    from cachectl import Cache

    dead = f"127.0.0.1:{free_port()}"  # listed first: the watcher must move on to the next
    settings = build_settings(url_flag=None, env={},
                              sentinels=(dead, *sentinel.sentinel_addrs),
                              master_name=sentinel.master_name)
    old = sentinel.current_primary()
    with Cache.from_policy(sentinel_policy, settings=settings, timeout_ms=200,
                           connect_timeout_ms=200, counters=False) as cache:
        assert cache.get("product", id=1) is not None  # seeded: a pooled connection on old
        new = sentinel.failover()

        def followed() -> tuple[int, int]:
            return cache.failovers_followed, library_connections(old)
        # the watcher hears +switch-master and drops the pool: wait for it, not a fixed 0.5 s
        assert wait_for(lambda: followed() == (1, 0), timeout_s=10), followed()
        assert cache.set("price", 7, sku="past-dead")
    assert new.client().get("shop:price:past-dead") == b"7"


@pytest.mark.slow
def test_async_library_follows_a_sentinel_failover(
        sentinel: SentinelFixture, primary: redis.Redis, sentinel_policy: Path,
        reliability: Recorder) -> None:
    from cachectl import AsyncCache

    settings = build_settings(url_flag=None, env={}, sentinels=tuple(sentinel.sentinel_addrs),
                              master_name=sentinel.master_name)
    old = sentinel.current_primary()
    primary.delete(*shop.product_keys())

    async def main() -> tuple[list[object], int, int, list[bool]]:
        async with AsyncCache.from_policy(sentinel_policy, settings=settings, timeout_ms=200,
                                          connect_timeout_ms=200, counters=False) as cache:
            # a few concurrent reads, so the pool holds several connections
            values = await asyncio.gather(*(cache.get_or_load("product", lambda i=i: {"id": i},
                                                              id=i) for i in range(8)))
            await asyncio.to_thread(sentinel.failover)
            await asyncio.sleep(0.5)
            left = library_connections(old)
            stored = [await cache.set("price", i, sku=f"async-{i}") for i in range(20)]
            return list(values), cache.failovers_followed, left, stored

    values, followed, left_on_old, stored = asyncio.run(main())
    assert values == [{"id": i} for i in range(8)]
    assert followed >= 1 and left_on_old == 0, (followed, left_on_old)
    assert all(stored), stored
    on_new = sentinel.current_primary().client()
    assert [on_new.get(f"shop:price:async-{i}") for i in range(20)] == [
        str(i).encode() for i in range(20)]
    reliability.add("sentinel-failover-async-library", area="sentinel",
                    fault="SENTINEL FAILOVER under AsyncCache",
                    command="AsyncCache library", did="followed +switch-master",
                    verified="no pooled connection left on the demoted primary 0.5 s after the "
                    "switch; all 20 writes after it stored on the new primary")
