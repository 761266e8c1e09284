"""Sentinel over TLS: a TLS-only primary and replica behind 3 TLS-only Sentinels.

Every process listens on ``tls-port`` only (``port 0``) and replicates over TLS, so a
command that reached anything in clear text would fail. The commands run as the
least-privileged ACL user docs/topologies.md names for them (user and password in the URL,
host and port from the Sentinels), and the library serves traffic as its own user.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cachectl.connection import build_settings, connect
from cachectl.errors import RedisUnavailableError
from tests.support import acl, shop
from tests.support.reliability import (
    Recorder,
    assert_no_traceback,
    run_cli,
)
from tests.support.sentinel import SentinelFixture, failover_under_traffic
from tests.support.tls import TlsFiles, make_tls_files, redis_supports_tls

pytestmark = pytest.mark.skipif(not redis_supports_tls(), reason="redis-server built without TLS")



@pytest.fixture(scope="module")
def tls_sentinel(tmp_path_factory: pytest.TempPathFactory,
                 certs: TlsFiles) -> Iterator[SentinelFixture]:
    deployment = SentinelFixture(tmp_path_factory.mktemp("tls-sentinel"), tls=certs).start()
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shop.write_policy(tmp_path_factory.mktemp("tls-sentinel-policy"))


@pytest.fixture
def primary(tls_sentinel: SentinelFixture) -> redis.Redis:
    client = tls_sentinel.current_primary().client()
    client.flushall()
    shop.seed(client)
    return client


def _data_nodes(deployment: SentinelFixture) -> list[redis.Redis]:
    """Primary and replica: ACL users are per server, and must survive a failover."""
    return [s.client() for s in deployment.servers]


def _user_url(user: acl.AclUser) -> str:
    # through Sentinel the URL gives the scheme, user, password and db; the Sentinels
    # give the host and port
    return f"rediss://{user.name}:{user.password}@mymaster/0"


def _sentinel_args(deployment: SentinelFixture, certs: TlsFiles | None) -> list[str]:
    args = []
    for addr in deployment.sentinel_addrs:
        args += ["--sentinel", addr]
    args += ["--master-name", deployment.master_name]
    if certs is not None:
        args += ["--tls-ca", str(certs.ca)]
    return args


# -- the connection layer -----------------------------------------------------------------

def test_tls_ca_reaches_the_primary_through_tls_sentinels(
        tls_sentinel: SentinelFixture, certs: TlsFiles) -> None:
    settings = build_settings(url_flag=None, env={}, sentinels=tuple(tls_sentinel.sentinel_addrs),
                              master_name=tls_sentinel.master_name, tls_ca=str(certs.ca))
    client = connect(settings)
    client.set("shop:product:1", b"x", px=10_000)
    assert tls_sentinel.current_primary().client().get("shop:product:1") == b"x"
    conn = client.connection_pool.get_connection()
    try:
        assert isinstance(conn, redis.connection.SSLConnection)
    finally:
        client.connection_pool.release(conn)
    client.close()


def test_rediss_url_with_an_acl_user_reaches_the_primary(
        tls_sentinel: SentinelFixture, certs: TlsFiles) -> None:
    user = acl.family_user(_data_nodes(tls_sentinel), "warm")
    settings = build_settings(url_flag=_user_url(user), env={},
                              sentinels=tuple(tls_sentinel.sentinel_addrs),
                              master_name=tls_sentinel.master_name, tls_ca=str(certs.ca))
    client = connect(settings)
    client.set("shop:product:2", b"y", px=10_000)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.get("shop:product:2")  # the warm rule has SET only: the user really is it
    assert tls_sentinel.current_primary().client().get("shop:product:2") == b"y"
    client.close()


def test_clear_text_to_tls_sentinels_is_exit_3_suggesting_tls(
        tls_sentinel: SentinelFixture, reliability: Recorder) -> None:
    settings = build_settings(url_flag=None, env={}, sentinels=tuple(tls_sentinel.sentinel_addrs),
                              master_name=tls_sentinel.master_name, timeout_s=1)
    with pytest.raises(RedisUnavailableError) as info:
        connect(settings)
    assert "--tls-ca" in (info.value.hint or "") and "rediss://" in (info.value.hint or "")
    reliability.add("sentinel-tls-clear-text", area="tls",
                    fault="TLS-only Sentinels reached without --tls-ca or rediss://",
                    command="connect", did="exit 3: " + info.value.message,
                    verified="the hint says rediss:// or --tls-ca (TLS to the Sentinels and "
                    "the primary)")


def test_wrong_ca_for_tls_sentinels_is_exit_3_naming_tls(
        tls_sentinel: SentinelFixture, tmp_path: Path,
        reliability: Recorder) -> None:
    other = make_tls_files(tmp_path / "other", ca_name="some other CA")
    settings = build_settings(url_flag=None, env={}, sentinels=tuple(tls_sentinel.sentinel_addrs),
                              master_name=tls_sentinel.master_name, tls_ca=str(other.ca),
                              timeout_s=1)
    with pytest.raises(RedisUnavailableError) as info:
        connect(settings)
    assert "TLS failed" in info.value.message
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.message
    assert "--tls-ca" in (info.value.hint or "")
    reliability.add("sentinel-tls-wrong-ca", area="tls",
                    fault="TLS Sentinels whose certificate is from another CA",
                    command="connect", did="exit 3: TLS failed: CERTIFICATE_VERIFY_FAILED",
                    verified="the hint names --tls-ca (before: 'No master found', which blamed "
                    "the master name)")


# -- every command through TLS Sentinels, as its least-privileged user ----------------------

BENCH = ["bench", "-n", "cart", "--requests", "100", "--warmup", "0s", "--keys", "20", "--json"]
COMMANDS = {
    "inspect": [["inspect", "--json"], ["audit", "--json"]],
    "stats": [["stats", "--interval", "100ms", "--json"]],
    "warm": [["warm", "-n", "product", "--json"]],
    "flush": [["flush", "-n", "price", "--yes", "--json"]],
    "bench": [BENCH],
}


@pytest.mark.parametrize("family", sorted(COMMANDS))
def test_command_runs_through_tls_sentinels_as_its_least_privileged_user(
        family: str, tls_sentinel: SentinelFixture, certs: TlsFiles, primary: redis.Redis,
        policy: Path, capsys: pytest.CaptureFixture[str],
        reliability: Recorder) -> None:
    runs = COMMANDS[family]
    if any(importlib.util.find_spec(f"cachectl.cli.{r[0]}") is None for r in runs):
        pytest.skip(f"cachectl {family} is not built yet")
    user = acl.family_user(_data_nodes(tls_sentinel), family)
    if family == "warm":
        primary.delete(*shop.product_keys())  # so warm has work to do
    for argv in runs:
        run = run_cli([*argv, "--policy", str(policy), "--url", _user_url(user),
                       *_sentinel_args(tls_sentinel, certs)], capsys)
        assert_no_traceback(run)
        assert run.code in (0, 1), run.text
        assert "permission" not in run.err, run.err
        assert user.password not in run.text
        doc = json.loads(run.out)
        if argv[0] == "inspect":
            counts = {ns["namespace"]: ns["keys"] for ns in doc["namespaces"]}
            assert counts["product"] == shop.PRODUCTS and counts["price"] == shop.PRICES
        elif argv[0] == "stats":
            assert doc["server"]["total"]["keys"] == primary.dbsize()
            assert doc["target"].startswith("sentinel ")
    present = shop.all_keys([primary])
    assert shop.foreign_intact([primary])
    if family == "warm":
        assert shop.product_keys() <= present
        assert all(primary.pttl(k) > 0 for k in shop.product_keys())
    elif family == "flush":
        assert not shop.price_keys() & present and shop.product_keys() <= present
    elif family == "bench":
        assert not {k for k in present if b":cachectl:bench:" in k}  # cleaned up
    reliability.add(f"sentinel-tls-{family}-least-privilege", area="tls",
                    fault=f"TLS-only primary, replica and Sentinels; ACL user holding only "
                    f"the {family} rule",
                    command="; ".join(" ".join(r[:3]) for r in runs),
                    did="exit 0/1, no permission error, no password printed",
                    verified="the keyspace afterwards is what the command promises; foreign "
                    "keys untouched")


def test_user_lacking_a_permission_through_tls_sentinels_is_exit_3_naming_it(
        tls_sentinel: SentinelFixture, certs: TlsFiles, primary: redis.Redis, policy: Path,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    reduced = [r for r in acl.family_rule("flush") if r != "+unlink"]
    weak = acl.set_user(_data_nodes(tls_sentinel), "weak-flush", "pw-weak-flush", reduced)
    run = run_cli(["flush", "-n", "price", "--yes", "--policy", str(policy),
                   "--url", _user_url(weak), *_sentinel_args(tls_sentinel, certs)], capsys)
    assert_no_traceback(run)
    assert run.code == 3, run.text
    assert "permission denied" in run.err and "unlink" in run.err.lower()
    assert weak.password not in run.text
    assert shop.price_keys() <= shop.all_keys([primary])  # nothing removed
    reliability.add("sentinel-tls-acl-missing-permission", area="tls",
                    fault="ACL user lacking +unlink runs flush through TLS Sentinels",
                    command="flush -n price --yes", did="exit 3: permission denied (unlink)",
                    verified="every price key still there; no password in the output")


# -- the library ----------------------------------------------------------------------------

def _library_settings(deployment: SentinelFixture, certs: TlsFiles, user: acl.AclUser) -> Any:
    return build_settings(url_flag=_user_url(user), env={},
                          sentinels=tuple(deployment.sentinel_addrs),
                          master_name=deployment.master_name, tls_ca=str(certs.ca))


def test_library_counters_through_tls_sentinels_are_read_by_stats(
        tls_sentinel: SentinelFixture, certs: TlsFiles, primary: redis.Redis, policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from cachectl import Cache

    primary.delete(*shop.product_keys())
    user = acl.family_user(_data_nodes(tls_sentinel), "library")
    with Cache.from_policy(policy, settings=_library_settings(tls_sentinel, certs, user),
                           timeout_ms=500, connect_timeout_ms=500,
                           counters_interval_s=60) as cache:
        values = [cache.get_or_load("product", lambda i=i: {"id": i}, id=i) for i in range(10)]
        hits = [cache.get_or_load("product", lambda: "loaded again", id=i) for i in range(10)]
        cache.flush_counters()
        local = cache.local_counters()["product"]
    assert values == hits == [{"id": i} for i in range(10)]
    assert local.redis_errors == 0
    assert all(primary.pttl(f"shop:product:{i}") > 0 for i in range(10))

    stats_user = acl.family_user(_data_nodes(tls_sentinel), "stats")
    run = run_cli(["stats", "--interval", "100ms", "--json", "--policy", str(policy),
                   "--url", _user_url(stats_user), *_sentinel_args(tls_sentinel, certs)],
                  capsys)
    assert run.code in (0, 1), run.text
    product = next(ns for ns in json.loads(run.out)["namespaces"]
                   if ns["namespace"] == "product")
    assert (product["misses"], product["fresh_hits"], product["redis_errors"]) == (10, 10, 0)


def test_async_library_through_tls_sentinels(
        tls_sentinel: SentinelFixture, certs: TlsFiles, primary: redis.Redis,
        policy: Path) -> None:
    from cachectl import AsyncCache

    user = acl.family_user(_data_nodes(tls_sentinel), "library")
    settings = _library_settings(tls_sentinel, certs, user)

    async def main() -> list[Any]:
        async with AsyncCache.from_policy(policy, settings=settings, timeout_ms=500,
                                          connect_timeout_ms=500, counters_interval_s=60) as cache:
            first = await cache.get_or_load("cart", lambda: ["a"], user_id="u9")
            second = await cache.get_or_load("cart", lambda: ["b"], user_id="u9")
            errors = cache.local_counters()["cart"].redis_errors
            return [first, second, errors]

    assert asyncio.run(main()) == [["a"], ["a"], 0]
    assert primary.get("shop:cart:u9") == b'["a"]'


@pytest.mark.slow
def test_library_serves_through_a_tls_sentinel_failover_without_raising(
        tls_sentinel: SentinelFixture, certs: TlsFiles, primary: redis.Redis, policy: Path,
        reliability: Recorder) -> None:
    from cachectl import Cache

    primary.delete(*shop.product_keys())
    user = acl.family_user(_data_nodes(tls_sentinel), "library")
    cache = Cache.from_policy(policy, settings=_library_settings(tls_sentinel, certs, user),
                              timeout_ms=200, connect_timeout_ms=200, counters=False)
    run = failover_under_traffic(cache, tls_sentinel)
    assert run.new.port != run.old.port
    assert not run.errors, run.errors
    assert not run.wrong
    assert run.calls_before > 0 and run.calls > run.calls_after_failover
    # the cache followed the Sentinels' +switch-master: nothing of its pool stayed on the
    # demoted primary (reads there lag; each write there failed once before this)
    assert run.followed >= 1 and run.left_on_old == 0, (run.followed, run.left_on_old)
    assert len(run.stored) == 20, run.stored
    on_new = run.new.client()  # reached over TLS, as the library user
    assert all(on_new.get(f"shop:price:after-{i}") == str(i).encode() for i in run.stored)
    reliability.add("sentinel-tls-failover-library", area="tls",
                    fault="SENTINEL FAILOVER of a TLS-only primary while Cache.get_or_load "
                    "serves traffic as the library ACL user",
                    command="Cache library", did="no exception reached the caller",
                    verified="every value returned was the loader's; traffic continued; every "
                    "write Cache.set reported stored is on the new primary")


def test_bench_through_tls_sentinels_with_only_tls_insecure(
        tls_sentinel: SentinelFixture, primary: redis.Redis, policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--tls-insecure alone means TLS through Sentinel: bench's raw clients must speak it too."""
    args = ["--sentinel", tls_sentinel.sentinel_addrs[0], "--master-name",
            tls_sentinel.master_name, "--tls-insecure"]
    run = run_cli([*BENCH, "--policy", str(policy), "--url", "redis://mymaster/0", *args], capsys)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.text
    doc = json.loads(run.out)
    assert doc["runs"] and all(r["errors"] == 0 for r in doc["runs"]), doc["runs"]
