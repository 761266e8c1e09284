"""cachectl flush on the command line: exit codes, confirmation, JSON, ACL, interrupts."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from cachectl.cli import main
from tests.support.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = REPO / ".venv" / "bin" / "cachectl"
CACHECTL = [str(_SCRIPT)] if _SCRIPT.exists() else [
    sys.executable, "-c", "from cachectl.cli import main; main()"]

POLICY = """\
version: 1
redis: {key_prefix: shop}
defaults: {ttl: 10m}
namespaces:
  product:         {key: "product:{id}", ttl: 1h, stale: 10m, tags: [catalog]}
  product_reviews: {key: "product:reviews:{id}", ttl: 30m, stale: 5m, tags: [catalog]}
  cart:            {key: "cart:{user_id}", ttl: 30m}
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> str:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    return str(path)


def _load(r: redis.Redis, keys: list[str], ttl_ms: int | None = 3_600_000) -> None:
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.set(k, "v", px=ttl_ms)
    pipe.execute()


def _run(policy_file: str, url: str, *args: str) -> int:
    return main(["flush", "-p", policy_file, "--url", url, *args])


def test_json_shape_of_a_hard_flush(redis_client: redis.Redis, redis_url: str, policy_file: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    _load(redis_client, ["shop:product:1", "shop:product:2", "shop:product:reviews:1"])
    assert _run(policy_file, redis_url, "--namespace", "product", "--yes", "--json") == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert set(doc) == {"mode", "dry_run", "what", "matched", "removed", "skipped", "uncertain",
                        "seconds",
                        "keys_per_s", "interrupted", "audit_id", "audit_error", "pacing",
                        "targets", "nodes"}
    assert (doc["mode"], doc["matched"], doc["removed"], doc["skipped"]) == ("hard", 2, 2, 0)
    assert doc["targets"][0]["target"] == "namespace product"
    assert sorted(doc["targets"][0]["examples"]) == ["shop:product:1", "shop:product:2"]
    assert set(doc["pacing"]) == {"batches", "backoffs", "paused_s", "max_ping_ms"}
    [node] = doc["nodes"]  # one server: one node, which did everything
    assert set(node) == {"node", "matched", "removed", "started_s", "seconds"}
    assert node["node"] == redis_url.removeprefix("redis://").removesuffix("/0")
    assert (node["matched"], node["removed"]) == (2, 2)
    assert "About to remove 2 keys (counted)" in out.err
    assert redis_client.exists("shop:product:reviews:1")


def test_soft_flush_json_says_softened(redis_client: redis.Redis, redis_url: str,
                                       policy_file: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    _load(redis_client, ["shop:product:1"])
    assert _run(policy_file, redis_url, "--tag", "catalog", "--soft", "--yes", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["mode"], doc["softened"], doc["what"]) == (
        "soft", 1, "tag catalog (product, product_reviews)")
    assert 0 < redis_client.pttl("shop:product:1") <= 600_000
    assert redis_client.get("shop:product:1") == b"v"


def test_not_a_terminal_without_yes_is_refused(redis_client: redis.Redis, redis_url: str,
                                               policy_file: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _load(redis_client, ["shop:product:1"])
    assert _run(policy_file, redis_url, "--namespace", "product") == 2
    err = capsys.readouterr().err
    assert "not a terminal" in err and "--yes" in err and "--dry-run" in err
    assert redis_client.exists("shop:product:1")


@pytest.mark.parametrize(("answer", "code", "left"), [("n\n", 1, 1), ("y\n", 0, 0)])
def test_confirmation_on_a_terminal(redis_client: redis.Redis, redis_url: str, policy_file: str,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch,
                                    answer: str, code: int, left: int) -> None:
    from cachectl.cli import flush as cli_flush

    _load(redis_client, ["shop:product:1", "shop:cart:1"])
    monkeypatch.setattr(cli_flush, "can_ask", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
    assert _run(policy_file, redis_url, "--namespace", "product") == code
    err = capsys.readouterr().err
    assert "About to remove 1 key (counted)" in err and "shop:product:1" in err
    assert "Remove 1 key? [y/N]" in err
    assert redis_client.exists("shop:product:1") == left
    assert redis_client.exists("shop:cart:1") == 1
    if code == 1:
        assert "nothing was flushed" in err


def test_dry_run_lists_and_touches_nothing(redis_client: redis.Redis, redis_url: str,
                                           policy_file: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _load(redis_client, [f"shop:product:{i}" for i in range(30)])
    assert _run(policy_file, redis_url, "--namespace", "product", "--dry-run", "--limit", "4",
                "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] and doc["matched"] == 30 and doc["removed"] == 0
    assert len(doc["targets"][0]["examples"]) == 4
    assert redis_client.dbsize() == 30


@pytest.mark.parametrize("pattern", ["*", "**", "?*", "[a-z]*"])
def test_pattern_matching_everything_is_refused(redis_client: redis.Redis, redis_url: str,
                                                policy_file: str, pattern: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _load(redis_client, ["shop:product:1", "x"])
    assert _run(policy_file, redis_url, "--pattern", pattern, "--force", "--yes") == 2
    assert "would match every key" in capsys.readouterr().err
    assert redis_client.dbsize() == 2


def test_pattern_needs_force(redis_url: str, policy_file: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(policy_file, redis_url, "--pattern", "shop:tmp:*", "--yes") == 2
    assert "--force" in capsys.readouterr().err


def test_pattern_with_force(redis_client: redis.Redis, redis_url: str, policy_file: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    _load(redis_client, ["shop:tmp:1", "shop:tmp:2", "shop:product:1"])
    assert _run(policy_file, redis_url, "--pattern", "shop:tmp:*", "--force", "--yes") == 0
    assert "removed 2" in capsys.readouterr().out
    assert redis_client.exists("shop:product:1")


@pytest.mark.parametrize(("args", "message"), [
    (["--namespace", "prodcut"], "did you mean 'product'"),
    (["--namespace", "cart", "--soft"], "no stale window"),
    (["--namespace", "product", "--tag", "catalog"], "cannot be combined"),
    ([], "nothing to flush"),
    (["--key", "product", "sku=1"], "no placeholder {sku}"),
    (["--key", "product", "id=a:b"], "cannot be one key segment"),
    (["--namespace", "product", "id=1"], "unexpected argument"),
    (["--namespace", "product", "--batch", "0"], "--batch 0 is out of range"),
])
def test_usage_errors_exit_2(redis_url: str, policy_file: str, args: list[str], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(policy_file, redis_url, *args, "--yes") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_key_flushes_one_key(redis_client: redis.Redis, redis_url: str, policy_file: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    _load(redis_client, ["shop:product:42", "shop:product:43"])
    assert _run(policy_file, redis_url, "--key", "product", "id=42", "--yes") == 0
    assert not redis_client.exists("shop:product:42") and redis_client.exists("shop:product:43")


def test_history_lists_audit_entries(redis_client: redis.Redis, redis_url: str,
                                     policy_file: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _load(redis_client, ["shop:product:1"])
    assert _run(policy_file, redis_url, "--namespace", "product", "--yes") == 0
    _load(redis_client, ["shop:product:2", "shop:product:3"])
    assert _run(policy_file, redis_url, "--tag", "catalog", "--soft", "--yes") == 0
    capsys.readouterr()
    assert _run(policy_file, redis_url, "--history", "--json", "--limit", "5") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stream"] == "shop:cachectl:audit"
    assert [(e["mode"], e["matched"], e["what"]) for e in doc["entries"]] == [
        ("soft", 2, "tag catalog (product, product_reviews)"), ("hard", 1, "namespace product")]
    assert all(e["user"] and e["host"] and e["time"].endswith("+00:00") for e in doc["entries"])
    assert _run(policy_file, redis_url, "--history") == 0
    assert "namespace product" in capsys.readouterr().out


def test_unreachable_server_exits_3(policy_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.redis_server import free_port

    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    assert _run(policy_file, url, "--namespace", "product", "--yes", "--timeout", "1") == 3
    err = capsys.readouterr().err
    assert "cannot connect" in err and "hunter2" not in err


@pytest.mark.parametrize("acl", [["+@read"], ["+@read", "+@connection"],
                                 ["+@read", "+@connection", "+evalsha", "+eval", "+script|load",
                                  "+unlink"]])
def test_read_only_acl_user_gets_exit_3_and_nothing_partial(
        redis_factory: Callable[..., RedisServer], policy_file: str, acl: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    server = redis_factory()
    admin = server.client()
    _load(admin, [f"shop:product:{i}" for i in range(2500)])
    admin.execute_command("ACL", "SETUSER", "ro", "on", ">s3cret-pw", "~*", *acl)
    url = f"redis://ro:s3cret-pw@127.0.0.1:{server.port}/0"
    for extra in ([["--soft"]] if "+unlink" in acl else [[], ["--soft"]]):
        code = _run(policy_file, url, "--namespace", "product", "--yes", "--batch", "100", *extra)
        err = capsys.readouterr().err
        assert code == 3, err
        assert "permission denied" in err and "s3cret-pw" not in err and "Traceback" not in err
        if acl == ["+@read"]:  # refused at connect (CLIENT SETNAME), before any SCAN
            assert "'client|setname'" in err
        elif "+unlink" not in acl:  # connected and counted; the first batch is refused whole
            assert ("'unlink'" in err) if not extra else ("'evalsha'" in err or "'eval'" in err)
        else:  # may UNLINK (and write no audit entry) and run scripts, but not PEXPIRE
            assert "'pexpire'" in err
        assert admin.dbsize() == 2500
        assert all(admin.pttl(f"shop:product:{i}") > 3_000_000 for i in (0, 1000, 2499))


def test_flush_done_but_audit_refused_exits_1_with_a_warning(
        redis_factory: Callable[..., RedisServer], policy_file: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    server = redis_factory()
    admin = server.client()
    _load(admin, [f"shop:product:{i}" for i in range(20)] + ["shop:cart:1"])
    admin.execute_command("ACL", "SETUSER", "fl", "on", ">pw", "~*", "+@read", "+@connection",
                          "+unlink")
    url = f"redis://fl:pw@127.0.0.1:{server.port}/0"
    assert _run(policy_file, url, "--namespace", "product", "--yes", "--json") == 1
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["removed"] == 20 and doc["audit_id"] is None and "xadd" in doc["audit_error"]
    assert "the flush is done, but its audit entry could not be written" in out.err
    assert admin.dbsize() == 1


def _subprocess(policy_file: str, url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*CACHECTL, "flush", "-p", policy_file, "--url", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_until_some_removed(r: redis.Redis, total: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if r.dbsize() < total:
            return
        time.sleep(0.02)
    raise AssertionError("the flush never started removing keys")


@pytest.mark.slow
def test_killed_halfway_then_rerun_finishes(redis_client: redis.Redis, redis_url: str,
                                            policy_file: str) -> None:
    keys = [f"shop:product:{i}" for i in range(6000)]
    _load(redis_client, [*keys, "shop:cart:1", "shop:product:reviews:1"])
    total = len(keys) + 2
    proc = _subprocess(policy_file, redis_url, "--namespace", "product", "--yes",
                       "--rate", "3000", "--batch", "100")
    _wait_until_some_removed(redis_client, total)
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=10)  # reap it and close its pipes
    left = sum(redis_client.exists(k) for k in keys)
    assert 0 < left < len(keys)
    proc2 = _subprocess(policy_file, redis_url, "--namespace", "product", "--yes", "--json")
    out, err = proc2.communicate(timeout=60)
    assert proc2.returncode == 0, err
    assert json.loads(out)["removed"] == left
    assert not any(redis_client.exists(k) for k in keys)
    assert redis_client.exists("shop:cart:1") and redis_client.exists("shop:product:reviews:1")


@pytest.mark.slow
def test_ctrl_c_stops_after_the_batch_exits_130_then_rerun_finishes(
        redis_client: redis.Redis, redis_url: str, policy_file: str) -> None:
    keys = [f"shop:product:{i}" for i in range(6000)]
    _load(redis_client, [*keys, "shop:cart:1"])
    proc = _subprocess(policy_file, redis_url, "--namespace", "product", "--yes", "--json",
                       "--rate", "3000", "--batch", "100")
    _wait_until_some_removed(redis_client, len(keys) + 1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    partial = json.loads(out)
    assert partial["interrupted"] is True
    left = sum(redis_client.exists(k) for k in keys)
    assert 0 < left < len(keys)
    assert partial["removed"] == len(keys) - left  # exactly what was done, no batch half-counted
    assert "interrupted" in err and "rerun" in err and "Traceback" not in err
    history = redis_client.xrevrange("shop:cachectl:audit", count=1)
    assert history[0][1][b"interrupted"] == b"1"
    assert main(["flush", "-p", policy_file, "--url", redis_url, "--namespace", "product",
                 "--yes"]) == 0
    assert not any(redis_client.exists(k) for k in keys) and redis_client.exists("shop:cart:1")
