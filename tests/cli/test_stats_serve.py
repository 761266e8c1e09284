"""`cachectl stats` as a Prometheus target, against real servers: promtool accepts what it exposes,
a paused Redis is `up 0` within the scrape deadline, malformed counter fields are skipped and counted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from cachectl.counter_format import bucket_key, write_buckets
from tests.cli.test_stats_cli import CACHECTL, POLICY_TEXT, REPO
from tests.support.prometheus import promtool
from tests.support.redis_server import RedisServer, free_port, stall
from tests.support.reliability import Recorder


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY_TEXT)
    return path


@pytest.fixture
def serve(policy_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], int]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(url: str, *args: str) -> tuple[subprocess.Popen[str], int]:
        port = free_port()
        proc = subprocess.Popen(
            [*CACHECTL, "stats", "-p", str(policy_path), "--url", url, "--interval", "200ms",
             "--serve", f":{port}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=REPO)
        procs.append(proc)
        _wait_for(lambda: _healthy(port), proc)
        return proc, port

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def _scrape(port: int, scrape_timeout_s: float | None = None) -> str:
    headers = {} if scrape_timeout_s is None else {
        "X-Prometheus-Scrape-Timeout-Seconds": str(scrape_timeout_s)}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(resp.read().decode())


def _up(body: str) -> list[tuple[dict[str, str], float]]:
    family = next(f for f in text_string_to_metric_families(body) if f.name == "cachectl_up")
    return [(s.labels, s.value) for s in family.samples]


def test_promtool_accepts_the_format_and_the_served_metrics(
        redis_server: RedisServer, redis_client: redis.Redis, policy_path: Path,
        serve: Callable[..., tuple[subprocess.Popen[str], int]]) -> None:
    pipe = redis_client.pipeline(transaction=False)
    write_buckets(pipe, "t:cachectl", {int(time.time() // 60): {
        ("product", "fresh_hits"): 90, ("product", "misses"): 10, ("product", "loads"): 10,
        ("product", "load_us"): 25_000}})
    pipe.execute()
    for i in range(20):
        redis_client.get(f"t:product:{i}")  # calls in the latency histogram
    once = subprocess.run([*CACHECTL, "stats", "-p", str(policy_path), "--url", redis_server.url,
                           "--interval", "100ms", "--format", "prometheus"],
                          capture_output=True, text=True, check=False, cwd=REPO)
    assert once.returncode in (0, 1), once.stderr
    _, port = serve(redis_server.url)
    served = _scrape(port)
    for body in (once.stdout, served):
        checked = promtool("check", "metrics", stdin=body)
        assert checked.returncode == 0 and checked.stdout + checked.stderr == "", \
            checked.stdout + checked.stderr
        names = {f.name for f in text_string_to_metric_families(body)}
        assert {"cachectl_build_info", "cachectl_namespace_requests", "cachectl_namespace_load_seconds",
                "cachectl_evicted_keys", "cachectl_expired_keys", "cachectl_read_latency_seconds",
                "cachectl_check_verdict"} <= names
    # and the Redis-down answer too
    down = subprocess.run([*CACHECTL, "stats", "-p", str(policy_path), "--format", "prometheus",
                           "--url", f"redis://127.0.0.1:{free_port()}/0", "--timeout", "0.5"],
                          capture_output=True, text=True, check=False, cwd=REPO)
    assert down.returncode == 3


def test_a_paused_redis_is_up_0_within_the_scrape_deadline(
        redis_factory: Callable[..., RedisServer],
        serve: Callable[..., tuple[subprocess.Popen[str], int]], reliability: Recorder) -> None:
    server = redis_factory()
    # the default --timeout (5 s) with redis-py's retries would take 15 s to give up
    proc, port = serve(server.url)
    assert _up(_scrape(port))[0][1] == 1
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(2):  # the second joins the scrape still stuck on the paused server
            start = time.monotonic()
            body = _scrape(port, scrape_timeout_s=3)
            elapsed = time.monotonic() - start
            assert elapsed < 3, f"answered after {elapsed:.1f}s, past Prometheus's timeout"
            assert _up(body) == [({"reason": "timeout"}, 0)]
        start = time.monotonic()
        body = _scrape(port)  # no header: the default deadline, under Prometheus's default 10 s
        assert time.monotonic() - start < 9.5 and _up(body)[0][1] == 0
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    _wait_for(lambda: _up(_scrape(port))[0][1] == 1, proc, timeout_s=40)
    reliability.add("stats-serve-redis-paused", area="one server",
                    fault="Redis paused (SIGSTOP) while Prometheus scrapes; redis-py would retry 3 x 5 s",
                    command="stats --serve :PORT",
                    did='cachectl_up{reason="timeout"} 0 within the scrape timeout Prometheus sends '
                        "(3 s here) and within 8 s without it; concurrent scrapes joined the stuck one",
                    verified="answered in time each scrape; up 1 again after SIGCONT; no traceback")


def test_a_stalled_redis_debug_sleep_is_up_0_within_the_deadline(
        redis_factory: Callable[..., RedisServer],
        serve: Callable[..., tuple[subprocess.Popen[str], int]], reliability: Recorder) -> None:
    server = redis_factory("--enable-debug-command", "yes")
    _, port = serve(server.url)
    assert _up(_scrape(port))[0][1] == 1
    sleeper = stall(server, 6)  # returns once the server is asleep
    try:
        start = time.monotonic()
        body = _scrape(port, scrape_timeout_s=2.5)
        assert time.monotonic() - start < 2.5 and _up(body)[0][1] == 0
    finally:
        sleeper.join(30)
    reliability.add("stats-serve-redis-stalled", area="one server",
                    fault="DEBUG SLEEP 6 on the server during a scrape",
                    command="stats --serve :PORT",
                    did="cachectl_up 0 before the 2.5 s scrape timeout",
                    verified="the answer arrived in time")


def test_malformed_counter_fields_are_skipped_and_counted(
        redis_server: RedisServer, redis_client: redis.Redis, policy_path: Path,
        serve: Callable[..., tuple[subprocess.Popen[str], int]], reliability: Recorder) -> None:
    minute = int(time.time() // 60)
    redis_client.delete(bucket_key("t:cachectl", minute))
    redis_client.hset(bucket_key("t:cachectl", minute), mapping={
        "product|fresh_hits": "97", "product|misses": "3",
        "price|fresh_hits": "1.5", b"\xff\xfe|misses": "4"})
    redis_client.expire(bucket_key("t:cachectl", minute), 600)
    try:
        done = subprocess.run([*CACHECTL, "stats", "-p", str(policy_path), "--url", redis_server.url,
                               "--interval", "100ms", "--json"],
                              capture_output=True, text=True, check=False, cwd=REPO)
        assert done.returncode in (0, 1), done.stderr
        doc = json.loads(done.stdout)
        assert doc["skipped_counter_fields"] == 2
        product = next(ns for ns in doc["namespaces"] if ns["namespace"] == "product")
        assert (product["fresh_hits"], product["misses"]) == (97, 3)
        _, port = serve(redis_server.url)
        families = {f.name: f for f in text_string_to_metric_families(_scrape(port))}
        assert families["cachectl_up"].samples[0].value == 1
        assert families["cachectl_malformed_fields"].samples[0].value == 2
    finally:
        redis_client.delete(bucket_key("t:cachectl", minute))
    reliability.add("stats-malformed-counter-fields", area="one server",
                    fault="counter bucket holding a value 1.5 and a non-UTF-8 field name",
                    command="stats --json; stats --serve :PORT",
                    did="both fields skipped and counted (skipped_counter_fields 2, "
                        "cachectl_malformed_fields 2); exit 0/1, never 70",
                    verified="the valid fields of the same bucket reported exactly; up 1")
