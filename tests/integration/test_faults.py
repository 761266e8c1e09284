"""Faults on one server: killed mid-command, paused or sleeping past --timeout, connection killed.

Each test checks the exit code and message docs/design.md promises, that nothing outside the
command's namespace was touched, and (where the command was cut short) that a rerun
leaves exactly the expected keyspace.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.support import shop
from tests.support.redis_server import RedisServer, stall
from tests.support.reliability import (
    Recorder,
    assert_no_traceback,
    run_cli,
)

REPO = Path(__file__).resolve().parents[2]
CACHECTL = str(REPO / ".venv" / "bin" / "cachectl")


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return shop.write_policy(tmp_path / "policy")


def _spawn(args: list[str], policy: Path, url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_PASSWORD")}
    return subprocess.Popen([CACHECTL, *args, "--policy", str(policy), "--url", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _error_line(err: str) -> str:
    """The ``error:`` line (progress and the plan go to stderr before it)."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _seed_many(client: redis.Redis, products: int) -> None:
    shop.seed(client, products=products)


def _wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _rest_intact(client: redis.Redis, *, products: int | None = None) -> None:
    """Prices, the cart and the foreign keys are as seeded (and products, if counted)."""
    keys = shop.all_keys([client])
    assert shop.price_keys() <= keys
    assert b"shop:cart:u1" in keys
    assert shop.foreign_intact([client])
    if products is not None:
        assert len(shop.product_keys(products) & keys) == products


@pytest.mark.slow
def test_server_killed_mid_flush_then_rerun_finishes(
        redis_factory: Callable[..., RedisServer], policy: Path,
        reliability: Recorder) -> None:
    # AOF with fsync always: what the server acknowledged survives the kill
    server = redis_factory("--appendonly", "yes", "--appendfsync", "always")
    n = 6000
    _seed_many(server.client(), n)
    proc = _spawn(["flush", "-n", "product", "--yes", "--rate", "2000", "--batch", "100",
                   "--timeout", "1"], policy, server.url)
    _wait_until(lambda: server.client().dbsize() < n)  # it has started removing
    server.kill()
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    error = _error_line(err)
    assert "127.0.0.1" in error and "hint:" in err
    server.start()
    client = server.client()
    left = len(shop.product_keys(n) & shop.all_keys([client]))
    assert 0 < left < n  # it was cut short, mid-way
    _rest_intact(client)
    rerun = _spawn(["flush", "-n", "product", "--yes", "--json"], policy, server.url)
    _out, err = rerun.communicate(timeout=30)
    assert rerun.returncode == 0, err
    assert not shop.product_keys(n) & shop.all_keys([client])
    _rest_intact(client)
    reliability.add("server-killed-mid-flush", area="one server",
                    fault="redis-server SIGKILLed while flush was removing keys",
                    command="flush -n product --yes",
                    did="exit 3: " + error.removeprefix("error: "),
                    verified="rerun removed the remaining product keys; prices, cart and "
                    "foreign keys untouched")


@pytest.mark.parametrize("fault", ["client-pause", "debug-sleep"])
def test_server_stalled_past_timeout_is_exit_3(
        fault: str, redis_factory: Callable[..., RedisServer], policy: Path,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    server = redis_factory()
    shop.seed(server.client())
    stall_s = 3.0
    if fault == "client-pause":
        server.client().execute_command("CLIENT", "PAUSE", int(stall_s * 1000), "ALL")
        sleeper = None
    else:
        sleeper = stall(server, stall_s)
    started = time.monotonic()
    run = run_cli(["flush", "-n", "product", "--yes", "--timeout", "0.3", "--policy",
                   str(policy), "--url", server.url], capsys)
    elapsed = time.monotonic() - started
    if sleeper is not None:
        sleeper.join()
    assert run.code == 3, run.text
    assert "timed out after 0.3s" in run.err
    assert "--timeout" in run.err  # the hint
    assert "Traceback" not in run.text
    assert elapsed < stall_s  # gave up before the server came back
    if fault == "client-pause":
        server.client().execute_command("CLIENT", "UNPAUSE")
    _rest_intact(server.client(), products=shop.PRODUCTS)
    command = "CLIENT PAUSE 3000 ALL" if fault == "client-pause" else "DEBUG SLEEP 3"
    reliability.add(f"stall-{fault}", area="one server", fault=f"{command} with --timeout 0.3",
                    command="flush -n product --yes",
                    did="exit 3: timed out after 0.3s, hint to raise --timeout",
                    verified="gave up before the server came back; no key changed")


def test_connection_killed_mid_flush_is_retried_and_exact(
        redis_factory: Callable[..., RedisServer], policy: Path,
        reliability: Recorder) -> None:
    server = redis_factory()
    n = 3000
    _seed_many(server.client(), n)
    proc = _spawn(["flush", "-n", "product", "--yes", "--rate", "3000", "--batch", "100",
                   "--json"], policy, server.url)
    admin = server.client()
    _wait_until(lambda: admin.dbsize() < n)
    killed = 0
    for entry in admin.client_list():
        if entry.get("name") == "cachectl":
            killed += admin.execute_command("CLIENT", "KILL", "ID", entry["id"])
    assert killed >= 1
    _out, err = proc.communicate(timeout=30)
    left = shop.product_keys(n) & shop.all_keys([admin])
    if proc.returncode == 3:  # acceptable only with a clear message, and a rerun finishes
        _error_line(err)
        rerun = _spawn(["flush", "-n", "product", "--yes"], policy, server.url)
        rerun.communicate(timeout=30)
        assert rerun.returncode == 0
        left = shop.product_keys(n) & shop.all_keys([admin])
        did = "exit 3 with a clear message; the rerun finished"
    else:
        assert proc.returncode == 0, err
        did = "reconnected (redis-py retry) and finished: exit 0"
    assert not left
    _rest_intact(admin)
    reliability.add("client-kill-mid-flush", area="one server",
                    fault="CLIENT KILL of cachectl's connection while flushing",
                    command="flush -n product --yes", did=did,
                    verified="every product key removed; prices, cart and foreign keys untouched")


def test_server_down_before_start_is_exit_3_for_every_command(
        redis_factory: Callable[..., RedisServer], policy: Path,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    from tests.support.redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    runs = {"flush": ["flush", "-n", "product", "--yes"], "stats": ["stats", "--interval", "0.1s"],
            "inspect": ["inspect"], "audit": ["audit"], "warm": ["warm", "-n", "product"],
            "bench": ["bench"]}
    tried = []
    import importlib.util

    for name, argv in runs.items():
        if importlib.util.find_spec(f"cachectl.cli.{argv[0]}") is None:
            continue
        run = run_cli([*argv, "--policy", str(policy), "--url", url, "--timeout", "0.5"], capsys)
        assert run.code == 3, (name, run.text)
        assert run.err.startswith("error: cannot connect to"), (name, run.err)
        assert "hint:" in run.err and "Traceback" not in run.text
        tried.append(name)
    assert tried
    reliability.add("server-down", area="one server", fault="nothing listening on --url",
                    command=", ".join(sorted(tried)),
                    did="exit 3: cannot connect to <url>, hint: is Redis running there?",
                    verified="one error line and one hint line; no traceback")


def test_maxmemory_noeviction_during_warm_reports_and_leaves_no_key_without_ttl(
        redis_factory: Callable[..., RedisServer], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], reliability: Recorder) -> None:
    if importlib.util.find_spec("cachectl.cli.warm") is None:
        pytest.skip("cachectl warm is not built yet")
    n = 6000
    policy = shop.write_policy(tmp_path / "big", products=n)
    server = redis_factory("--maxmemory-policy", "noeviction")
    admin = server.client()
    for key, value in shop.FOREIGN.items():
        admin.set(key, value)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", used + 150_000)  # room for a part of the rows only
    run = run_cli(["warm", "-n", "product", "--json", "--policy", str(policy), "--url",
                   server.url], capsys)
    assert_no_traceback(run)
    assert run.code == 1, run.text  # done, but something fell short
    doc = json.loads(run.out)
    assert doc["failed"] > 0 and doc["written"] > 0
    ns = doc["namespaces"][0]
    assert ns["written"] + ns["failed"] == ns["rows"] <= n  # every row read is accounted for
    assert ns["errors_by_reason"] == {"OOM": ns["failed"]}
    assert "out of memory" in (doc["stopped"] or "")  # it stopped instead of hammering
    assert all("OOM" in p["reason"] for p in ns["problems"])
    written = shop.product_keys(n) & shop.all_keys([admin])
    assert len(written) == doc["written"]
    assert all(admin.pttl(k) > 0 for k in written)  # nothing without a TTL, ever
    assert shop.foreign_intact([admin])
    reliability.add("maxmemory-noeviction-warm", area="one server",
                    fault="maxmemory reached with noeviction during warm",
                    command="warm -n product",
                    did="exit 1: OOM counted per row, stopped once a whole batch was refused",
                    verified="every key written has a TTL; foreign keys untouched")
