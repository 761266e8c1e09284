"""`cachectl demo --quick` runs the whole story, every step behaving (exit 0), on a real and an
embedded server; bench's latency verdict may be a FAIL on a loaded machine (tests/support/demo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.demo import assert_steps_behaved, json_exits, summary_exits
from tests.support.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]
STEPS = ("1. Lint", "2. Warm", "3. Shoppers", "4. Stats", "5. Bench", "6. Soft-flush price",
         "7. Flush stock", "8. Audit", "Summary")


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "120"
    return subprocess.run(
        [sys.executable, "-m", "cachectl", "demo", "--quick", *args],
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO, check=False,
    )


@pytest.mark.slow
def test_demo_quick_against_the_fixture_server_exits_0(redis_server: RedisServer) -> None:
    redis_server.client().flushall()
    done = _demo("--url", redis_server.url)
    assert "Summary" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert_steps_behaved(summary_exits(done.stdout), done.stdout, done.returncode)
    assert "using the server you named" in done.stdout.splitlines()[0]
    for step in STEPS:
        assert step in done.stdout
    assert "Traceback" not in done.stderr
    # the demo's keys are the shop's: warmed catalogue under shop:, and stock flushed
    client = redis_server.client()
    assert client.exists("shop:product:1") == 1
    assert not list(client.scan_iter(match="shop:stock:*", count=1000))


@pytest.mark.slow
def test_demo_quick_on_the_embedded_server_exits_0_with_a_json_summary() -> None:
    done = _demo("--embedded", "--json")
    assert done.stdout.startswith("{"), done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout)  # stdout holds the one document, the narration is on stderr
    assert summary["server"]["kind"] == "embedded"
    assert [s["title"][:2] for s in summary["steps"]] == [
        "1.", "2.", "3.", "4.", "5.", "6.", "6b", "7.", "8."]
    assert all(s["ok"] is (s["exit_code"] in s["expected"]) for s in summary["steps"])
    assert_steps_behaved(json_exits(summary), done.stderr, done.returncode)
    assert summary["passed"] is (done.returncode == 0)
    assert "embedded in-process server" in done.stderr.splitlines()[0]
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_demo_starts_its_own_server_and_stops_it() -> None:
    done = _demo()
    assert "Summary" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert_steps_behaved(summary_exits(done.stdout), done.stdout, done.returncode)
    first = done.stdout.splitlines()[0]
    assert "started a throwaway redis-server" in first
    port = int(first.split("127.0.0.1:")[1].split()[0])
    assert port != 6379
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
