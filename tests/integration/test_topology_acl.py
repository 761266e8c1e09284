"""Least-privilege ACL rules per command family, checked against what each command really sends.

For every family whose command exists: run its invocations as the default user and
collect the commands Redis saw (INFO commandstats, scripts' inner commands included);
the family's rule must allow each of them and nothing it never uses; then run the same
invocations as a user holding only that rule (same exit codes); then take one needed
permission away: exit 3 and a message naming the missing permission.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest
import redis

from tests.support import acl, shop
from tests.support.redis_server import RedisServer
from tests.support.reliability import Recorder, run_cli

# what a connection sends by itself, and what the test itself runs
NOISE = {"hello", "ping", "client|setname", "client|setinfo", "auth", "config|resetstat",
         "select"}

BENCH = ["bench", "-n", "product", "--requests", "200", "--warmup", "0s", "--keys", "30"]
# cart holds a key of every type (acl.seed_every_type): sampling sizes sends MEMORY USAGE for
# the non-strings, --existing reads each with its own command
BENCH_CART = ["bench", "-n", "cart", "--requests", "200", "--warmup", "0s", "--keys", "30"]
FAMILY_RUNS: dict[str, list[list[str]]] = {
    "inspect": [["inspect", "--json"], ["inspect", "-n", "product", "--json"],
                ["inspect", "shop:product:1", "--json"], ["inspect", "--no-lua", "--json"],
                ["audit", "--json"], ["audit", "--no-lua", "--json"]],
    "warm": [["warm", "-n", "product", "--json"],
             ["warm", "-n", "product", "--only-missing", "--json"]],
    "flush": [["flush", "-n", "product", "--yes", "--json"],
              ["flush", "-n", "price", "--soft", "--yes", "--json"],
              ["flush", "--history", "--json"],
              ["flush", "-n", "cart", "--dry-run", "--json"]],
    "stats": [["stats", "--interval", "100ms", "--json"]],
    "bench": [[*BENCH, "--json"], [*BENCH, "--mode", "mixed", "--json"],
              [*BENCH, "--existing", "--json"], [*BENCH_CART, "--json"],
              [*BENCH_CART, "--existing", "--json"]],
}


def _seed(client: redis.Redis) -> None:
    shop.seed(client)
    acl.seed_every_type(client)


def _available(family: str) -> bool:
    return all(importlib.util.find_spec(f"cachectl.cli.{run[0]}") is not None
               for run in FAMILY_RUNS[family])


def _perm_names(rule: tuple[str, ...]) -> set[str]:
    return {r[1:] for r in rule if r.startswith("+") and not r.startswith("+@")}


def _used(client: redis.Redis) -> set[str]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_") for name in stats} - NOISE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RedisServer:
    s = RedisServer(tmp_path_factory.mktemp("acl")).start()
    yield s  # type: ignore[misc]
    s.stop()


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shop.write_policy(tmp_path_factory.mktemp("acl-policy"))


def _run_all(family: str, server: RedisServer, policy: Path, url: str,
             capsys: pytest.CaptureFixture[str]) -> tuple[list[int], set[str], list[str]]:
    admin = server.client()
    codes, used, errs = [], set(), []
    for argv in FAMILY_RUNS[family]:
        admin.flushall()
        _seed(admin)
        admin.config_resetstat()
        run = run_cli([*argv, "--policy", str(policy), "--url", url], capsys)
        codes.append(run.code)
        used |= _used(admin)
        errs.append(run.err)
    return codes, used, errs


@pytest.mark.parametrize("family", sorted(FAMILY_RUNS))
def test_family_rule_allows_exactly_what_the_command_uses(
        family: str, server: RedisServer, policy: Path, capsys: pytest.CaptureFixture[str],
        reliability: Recorder) -> None:
    if not _available(family):
        pytest.skip(f"cachectl {family} is not built yet")
    rule = acl.FAMILY_RULES[family]
    assert rule is not None
    admin_codes, used, errs = _run_all(family, server, policy, server.url, capsys)
    assert all(c in (0, 1) for c in admin_codes), errs
    allowed = _perm_names(rule)
    assert used <= allowed, f"{family} sends commands its rule lacks: {sorted(used - allowed)}"
    assert allowed <= used, f"{family}'s rule grants unused: {sorted(allowed - used)}"

    user = acl.family_user([server.client()], family)
    user_codes, _, user_errs = _run_all(family, server, policy,
                                        user.url("127.0.0.1", server.port), capsys)
    assert not any("permission" in e for e in user_errs), user_errs
    if family == "bench":  # its verdict (exit 0/1) depends on latency on a loaded machine
        assert all(c in (0, 1) for c in user_codes), user_errs
    else:
        assert user_codes == admin_codes, user_errs

    reliability.add(f"acl-{family}-least-privilege", area="acl",
                    fault=f"ACL user holding only the {family} rule",
                    command="; ".join(" ".join(a) for a in FAMILY_RUNS[family]),
                    did="same exit codes as the admin user",
                    verified="the rule allows every command sent (INFO commandstats) and "
                    "grants nothing unused")


# bench stops with exit 3 on a NOPERM reply since its owner fixed it
MISSING_XFAIL: dict[str, str] = {}


@pytest.mark.parametrize("family", [
    pytest.param(f, marks=pytest.mark.xfail(strict=True, reason=MISSING_XFAIL[f]))
    if f in MISSING_XFAIL else f for f in sorted(FAMILY_RUNS)])
def test_missing_permission_is_exit_3_naming_it(
        family: str, server: RedisServer, policy: Path, capsys: pytest.CaptureFixture[str],
        reliability: Recorder) -> None:
    if not _available(family):
        pytest.skip(f"cachectl {family} is not built yet")
    # take away the first command (alphabetically) the first invocation needs
    first_used = sorted(_run_all_first(family, server, policy, capsys))[0]
    reduced = [r for r in acl.family_rule(family) if r != f"+{first_used}"]
    weak = acl.set_user([server.client()], f"weak-{family}", "pw-weak", reduced)
    server.client().flushall()
    _seed(server.client())
    run = run_cli([*FAMILY_RUNS[family][0], "--policy", str(policy),
                   "--url", weak.url("127.0.0.1", server.port)], capsys)
    assert run.code == 3, run.text
    assert "permission denied" in run.err
    assert first_used.split("|")[0] in run.err.lower()
    assert "pw-weak" not in run.text
    reliability.add(f"acl-{family}-missing-permission", area="acl",
                    fault=f"ACL user lacking +{first_used}",
                    command=" ".join(FAMILY_RUNS[family][0]),
                    did="exit 3: permission denied, naming the command",
                    verified="no password in the output")


def _run_all_first(family: str, server: RedisServer, policy: Path,
                   capsys: pytest.CaptureFixture[str]) -> set[str]:
    admin = server.client()
    admin.flushall()
    _seed(admin)
    admin.config_resetstat()
    run_cli([*FAMILY_RUNS[family][0], "--policy", str(policy), "--url", server.url], capsys)
    return _used(admin)


def test_operator_may_delete_cache_keys_but_not_flushall_or_config(server: RedisServer) -> None:
    user = acl.role_user([server.client()], "operator")
    client = redis.Redis.from_url(user.url("127.0.0.1", server.port))
    server.client().flushall()
    shop.seed(server.client())
    assert client.unlink("shop:product:1") == 1
    assert client.get("shop:price:sku-1") == b"100"
    for forbidden in (lambda: client.flushall(), lambda: client.config_get("maxmemory"),
                      lambda: client.get("other:product:1"), lambda: client.keys("*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()


def test_readonly_user_can_read_but_never_write(server: RedisServer) -> None:
    user = acl.role_user([server.client()], "readonly")
    client = redis.Redis.from_url(user.url("127.0.0.1", server.port))
    server.client().flushall()
    shop.seed(server.client())
    assert client.get("shop:product:1") is not None
    assert client.pttl("shop:product:1") > 0
    for forbidden in (lambda: client.set("shop:product:1", "x"),
                      lambda: client.unlink("shop:product:1"), lambda: client.flushall()):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()


def test_readonly_user_running_flush_gets_exit_3_naming_the_permission(
        server: RedisServer, policy: Path, capsys: pytest.CaptureFixture[str],
        reliability: Recorder) -> None:
    if not _available("flush"):
        pytest.skip("cachectl flush is not built yet")
    user = acl.role_user([server.client()], "readonly")
    server.client().flushall()
    shop.seed(server.client())
    run = run_cli(["flush", "-n", "product", "--yes", "--policy", str(policy),
                   "--url", user.url("127.0.0.1", server.port)], capsys)
    assert run.code == 3, run.text
    assert "permission denied" in run.err and "unlink" in run.err.lower()
    assert len(shop.product_keys() & shop.all_keys([server.client()])) == shop.PRODUCTS
    reliability.add("acl-readonly-flush", area="acl", fault="read-only ACL user runs flush",
                    command="flush -n product --yes", did="exit 3: permission denied (unlink)",
                    verified="every product key is still there")


# -- the Cache library ----------------------------------------------------------------------

def _library_workload(policy: Path, url: str, admin: redis.Redis) -> tuple[dict[str, object],
                                                                           str, list[object]]:
    """Misses, hits, a stale hit with revalidation, set/get, invalidations, counters, L1."""
    from cachectl import Cache

    cache = Cache.from_policy(policy, url=url, l1_max_items=100, counters=True,
                              counters_interval_s=0.1, timeout_ms=500)
    try:
        values = [cache.get_or_load("product", lambda i=i: {"id": i}, id=i) for i in range(5)]
        values += [cache.get_or_load("product", lambda i=i: {"id": i}, id=i) for i in range(5)]
        admin.set("shop:product:old", b'{"id": "old"}', px=300_000)  # in the stale band
        values.append(cache.get_or_load("product", lambda: {"id": "new"}, id="old"))
        deadline = time.monotonic() + 10  # the background revalidation
        while (json.loads(admin.get("shop:product:old") or b"null") != {"id": "new"}
               and time.monotonic() < deadline):
            time.sleep(0.02)
        values.append(json.loads(admin.get("shop:product:old") or b"null"))
        cache.set("price", 5, sku="a")
        values.append(cache.get("price", sku="a"))
        cache.invalidate("price", sku="a")
        cache.soft_invalidate("product", id=1)
        cache.invalidate_tag("catalog")
        cache.flush_counters()
        counters = {ns: c for ns, c in cache.local_counters().items()}
        return counters, cache.breaker_state, values
    finally:
        cache.close()


def test_library_rule_allows_exactly_what_the_cache_sends(
        server: RedisServer, policy: Path, reliability: Recorder) -> None:
    if importlib.util.find_spec("cachectl.cache") is None:
        pytest.skip("the Cache library is not built yet")
    admin = server.client()
    admin.flushall()
    admin.config_resetstat()
    # the stale hit serves the old value; revalidation stores the loader's new one
    expected = [{"id": i} for i in range(5)] * 2 + [{"id": "old"}, {"id": "new"}, 5]
    _, _, values = _library_workload(policy, server.url, admin)
    assert values == expected
    used = _used(admin)
    rule = acl.FAMILY_RULES["library"]
    assert rule is not None
    allowed = _perm_names(rule)
    assert used <= allowed, f"the library sends commands its rule lacks: {sorted(used - allowed)}"
    assert allowed <= used, f"the library's rule grants unused: {sorted(allowed - used)}"

    admin.flushall()
    user = acl.family_user([admin], "library")
    counters, breaker, values = _library_workload(policy, user.url("127.0.0.1", server.port),
                                                  admin)
    assert values == expected
    assert breaker == "closed"
    assert all(c.redis_errors == 0 and c.refresh_errors == 0  # type: ignore[attr-defined]
               for c in counters.values())
    reliability.add("acl-library-least-privilege", area="acl",
                    fault="ACL user holding only the library rule", command="Cache library",
                    did="no Redis error, breaker closed, stale key revalidated",
                    verified="the rule allows every command the library sends and nothing else")


def test_library_without_a_permission_falls_back_without_raising(
        server: RedisServer, policy: Path, reliability: Recorder) -> None:
    if importlib.util.find_spec("cachectl.cache") is None:
        pytest.skip("the Cache library is not built yet")
    from cachectl import Cache

    admin = server.client()
    admin.flushall()
    reduced = [r for r in acl.family_rule("library") if r != "+get"]
    weak = acl.set_user([admin], "weak-library", "pw-weak-lib", reduced)
    cache = Cache.from_policy(policy, url=weak.url("127.0.0.1", server.port),
                              counters_interval_s=60, timeout_ms=500)
    try:
        values = [cache.get_or_load("product", lambda i=i: {"id": i}, id=i) for i in range(3)]
        counters = cache.local_counters()
    finally:
        cache.close()
    assert values == [{"id": i} for i in range(3)]
    assert counters["product"].redis_errors > 0
    reliability.add("acl-library-missing-permission", area="acl",
                    fault="ACL user lacking +get", command="Cache.get_or_load",
                    did="served the loader's value; counted redis_errors",
                    verified="no exception reached the caller")


ROLE_RUNS = {
    "readonly": ["inspect", "audit", "stats"],
    "operator": ["inspect", "audit", "stats", "warm", "flush", "bench"],
}


@pytest.mark.parametrize("role", sorted(ROLE_RUNS))
def test_role_runs_the_commands_the_docs_promise(
        role: str, server: RedisServer, policy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    user = acl.role_user([server.client()], role)
    for family in ROLE_RUNS[role]:
        runs = [r for r in FAMILY_RUNS[acl.COMMAND_FAMILY[family]] if r[0] == family]
        for argv in runs:
            if importlib.util.find_spec(f"cachectl.cli.{argv[0]}") is None:
                continue
            server.client().flushall()
            _seed(server.client())
            run = run_cli([*argv, "--policy", str(policy),
                           "--url", user.url("127.0.0.1", server.port)], capsys)
            assert run.code in (0, 1), (role, argv, run.text)
            assert "permission" not in run.err, (role, argv, run.err)


def test_documented_acl_table_is_the_tested_rules() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "topologies.md").read_text(encoding="utf-8")
    section = doc.split("<!-- section:topologies", 1)[1].split("<!-- /section:topologies")[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 3 and cells[0] in acl.FAMILY_RULES:
            rows[cells[0]] = cells[2].strip("`").replace("\\|", "|")
    assert rows == {f: acl.documented_rule(f) for f in acl.FAMILY_RULES}
    for role in ("operator", "readonly"):
        shown = " ".join(acl.role_rule(role)[3:])  # without resetkeys resetchannels -@all
        assert f"(`{shown.replace('|', chr(92) + '|')}`)" in section, role
