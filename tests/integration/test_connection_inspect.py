"""inspect/audit against servers that refuse, time out, need TLS, a password or an ACL user."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cachectl.cli import main
from tests.support.redis_server import RedisServer, free_port
from tests.support.tls import make_tls_files, redis_supports_tls, start_tls_server

POLICY = """
version: 1
redis: {key_prefix: shop}
namespaces:
  product: {key: "product:{id}", ttl: 1h}
"""
SECRET = "s3cr3t-Pa55word"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_wrong_password_exits_3_and_never_prints_it(
        redis_factory: Callable[..., RedisServer], policy_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    server = redis_factory(password="the-right-one")
    url = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    for command in ("inspect", "audit"):
        code, out, err = run(capsys, command, "-p", str(policy_file), "--url", url, "--json")
        assert code == 3
        assert out == ""
        assert "authentication refused" in err
        assert SECRET not in out + err
        assert f"127.0.0.1:{server.port}" in err


def test_password_file_reaches_a_requirepass_server(
        redis_factory: Callable[..., RedisServer], policy_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    server = redis_factory(password=SECRET)
    server.client().set("shop:product:1", "v", px=3_600_000)
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET + "\n")
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", server.url,
                         "--password-file", str(secret_file), "--json")
    assert code == 0, err
    assert '"keys": 1' in out
    assert SECRET not in out + err


def test_unreachable_port_exits_3_within_the_timeout(
        policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    started = time.monotonic()
    code, out, err = run(capsys, "audit", "-p", str(policy_file), "--url",
                         f"redis://127.0.0.1:{port}/0", "--timeout", "1")
    assert code == 3
    assert time.monotonic() - started < 8
    assert f"cannot connect to redis://127.0.0.1:{port}/0" in err
    assert "hint:" in err
    assert "Traceback" not in err
    assert out == ""


def test_a_paused_server_times_out_with_a_clear_message(
        redis_factory: Callable[..., RedisServer], policy_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    server = redis_factory()
    admin = server.client()
    admin.set("shop:product:1", "v", px=3_600_000)
    admin.execute_command("CLIENT", "PAUSE", "6000", "ALL")
    started = time.monotonic()
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", server.url,
                         "--timeout", "0.5")
    elapsed = time.monotonic() - started
    admin.execute_command("CLIENT", "UNPAUSE")
    assert code == 3
    assert elapsed < 4.5  # the timeout and its bounded retries, not the 6 s pause
    assert "timed out after 0.5s" in err
    assert "raise --timeout" in err
    assert out == ""


def test_acl_user_without_scripting_falls_back_to_pipelining(
        redis_factory: Callable[..., RedisServer], policy_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    server = redis_factory()
    admin = server.client()
    admin.execute_command(
        "ACL", "SETUSER", "inspector", "on", ">inspector-pw", "resetkeys", "~shop:*", "-@all",
        "+ping", "+client|setname", "+scan", "+type", "+pttl", "+memory|usage", "+object",
        "+strlen", "+get", "+info", "+dbsize", "+select")
    admin.set("shop:product:1", "v", px=3_600_000)
    admin.set("shop:product:2", "v")
    admin.set("other:1", "v")  # outside the user's keys: counted as refused, not judged
    url = f"redis://inspector:inspector-pw@127.0.0.1:{server.port}/0"
    code, out, err = run(capsys, "audit", "-p", str(policy_file), "--url", url, "--json")
    assert code == 1, err
    assert '"method": "pipeline"' in out
    assert '"denied_keys": 1' in out
    assert '"code": "no-ttl"' in out
    assert "inspector-pw" not in out + err
    # with scripting allowed the same audit runs server-side
    admin.execute_command("ACL", "SETUSER", "inspector", "+eval", "+evalsha", "+script|load",
                          "+time")
    code, out, err = run(capsys, "audit", "-p", str(policy_file), "--url", url, "--json")
    assert code == 1, err
    assert '"method": "lua"' in out
    assert '"denied_keys": 1' in out


def test_acl_user_missing_a_permission_exits_3_naming_it(
        redis_factory: Callable[..., RedisServer], policy_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    server = redis_factory()
    server.client().execute_command("ACL", "SETUSER", "weak", "on", ">weak-pw", "~*", "-@all",
                                    "+ping", "+client|setname")
    code, _, err = run(capsys, "inspect", "-p", str(policy_file), "--url",
                       f"redis://weak:weak-pw@127.0.0.1:{server.port}/0")
    assert code == 3
    assert "permission denied" in err
    assert "weak-pw" not in err


@pytest.mark.skipif(not redis_supports_tls(), reason="redis-server built without TLS")
def test_tls_server_with_generated_certificates(
        tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = make_tls_files(tmp_path / "tls")
    server = start_tls_server(tmp_path / "srv", files, client_certs=True)
    try:
        server.client().set("shop:product:1", "v", px=3_600_000)
        tls = ["--tls-ca", str(files.ca), "--tls-cert", str(files.client_cert),
               "--tls-key", str(files.client_key)]
        code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", server.url,
                             *tls, "--json")
        assert code == 0, err
        assert '"keys": 1' in out
        # no client certificate: the server refuses the handshake -> exit 3
        code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", server.url,
                             "--tls-ca", str(files.ca), "--timeout", "2")
        assert code == 3
        assert out == ""
        # plain redis:// against a TLS port: also exit 3, never a traceback
        plain = server.url.replace("rediss://", "redis://")
        code, _, err = run(capsys, "audit", "-p", str(policy_file), "--url", plain,
                           "--timeout", "1")
        assert code == 3
        assert "Traceback" not in err
    finally:
        server.stop()


def test_wrong_ca_is_a_tls_failure(tmp_path: Path, policy_file: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    if not redis_supports_tls():
        pytest.skip("redis-server built without TLS")
    files = make_tls_files(tmp_path / "tls")
    other = make_tls_files(tmp_path / "other", ca_name="some other CA")
    server = start_tls_server(tmp_path / "srv", files)
    try:
        code, _, err = run(capsys, "inspect", "-p", str(policy_file), "--url", server.url,
                           "--tls-ca", str(other.ca), "--timeout", "2")
        assert code == 3
        assert "TLS failed" in err or "certificate" in err.lower()
    finally:
        server.stop()


def test_no_server_side_batch_runs_long(redis_factory: Callable[..., RedisServer],
                                        policy_file: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Each EVALSHA stays within its ~5 ms budget. The slow log times every call in wall
    time, which a loaded machine stretches for any call it preempts (on a 2-core box at load
    16, a quarter of the calls passed 50 ms), so the test judges the typical call: the
    median, which a script that ignored its budget (a few long calls) would fail."""
    # calls under 1 ms are not logged (nor the script's own commands, mostly)
    server = redis_factory("--slowlog-log-slower-than", "1000", "--slowlog-max-len", "10000")
    r = server.client()
    pipe = r.pipeline(transaction=False)
    for i in range(30_000):
        pipe.set(b"shop:product:%d" % i, b"v" * 20, px=3_600_000)
        if i % 10_000 == 0:
            pipe.execute()
    pipe.execute()
    r.slowlog_reset()
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", server.url,
                         "--json")
    assert code == 0, err
    assert '"keys": 30000' in out
    logged = [e["duration"] for e in r.slowlog_get(10_000)
              if e["command"].split()[:1] in ([b"EVALSHA"], [b"evalsha"])]
    calls = r.info("commandstats")["cmdstat_evalsha"]["calls"]
    assert calls > 5  # it was batched
    durations = sorted([0] * (calls - len(logged)) + logged)  # the unlogged took under 1 ms
    assert durations[len(durations) // 2] < 50_000, durations


def test_the_documented_least_privilege_acl_is_enough(
        redis_factory: Callable[..., RedisServer], policy_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """docs/inspect.md's ACL rule runs every inspect and audit mode (kept true here)."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "inspect.md").read_text()
    rule = re.search(r"Least-privilege ACL for both commands:\n`([^`]+)`", doc)
    assert rule is not None
    server = redis_factory()
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "insp", "on", ">insp-pw", "resetkeys", "-@all",
                          *rule.group(1).split())
    admin.set("shop:product:1", '{"a": 1}', px=3_600_000)
    admin.hset("shop:product:2", "f", "v")
    url = f"redis://insp:insp-pw@127.0.0.1:{server.port}/0"
    for args, want in ((["inspect"], 0), (["inspect", "shop:product:1", "shop:product:2"], 0),
                       (["inspect", "-n", "product"], 0), (["audit"], 1)):
        code, out, err = run(capsys, *args, "-p", str(policy_file), "--url", url, "--json")
        assert code == want, (args, err)
        assert "permission" not in err
    code, out, _ = run(capsys, "audit", "-p", str(policy_file), "--url", url, "--json")
    assert '"method": "lua"' in out
