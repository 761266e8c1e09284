"""`cachectl stats` on the command line: exit codes, JSON schema, Prometheus text, --serve, --watch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from cachectl.cli import main
from cachectl.counter_format import write_buckets
from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "stats.schema.json").read_text())
CACHECTL = [sys.executable, "-m", "cachectl.cli"] if not (REPO / ".venv/bin/cachectl").exists() \
    else [str(REPO / ".venv/bin/cachectl")]

POLICY_TEXT = """\
version: 1
redis: {key_prefix: t}
thresholds: {min_requests: 100}
defaults: {ttl: 10m}
namespaces:
  product: {key: "product:{id}", critical: true, hot: true}
  price:   {key: "price:{sku}"}
"""


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY_TEXT)
    return path


def counters(client: redis.Redis, namespace: str, hits: int, misses: int) -> None:
    pipe = client.pipeline(transaction=False)
    write_buckets(pipe, "t:cachectl", {int(time.time() // 60): {
        (namespace, "fresh_hits"): hits, (namespace, "misses"): misses}})
    pipe.execute()


def stats(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["stats", "--interval", "100ms", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_validates_against_its_schema(capsys: pytest.CaptureFixture[str], redis_url: str,
                                                  redis_client: redis.Redis, policy_path: Path) -> None:
    counters(redis_client, "product", 990, 10)
    redis_client.set("t:product:1", b"{}", px=60_000)
    code, out, err = stats(capsys, "-p", str(policy_path), "--url", redis_url, "--json")
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert code == 0, err
    assert doc["schema_version"] == 1
    product = next(ns for ns in doc["namespaces"] if ns["namespace"] == "product")
    assert product["hit_rate"] == 0.99 and product["status"] == "pass"
    assert product["keys"]["keys"] == 1
    assert doc["status"] == "warn"  # noeviction and maxmemory 0 on the test server


def test_a_failed_threshold_exits_1_and_strict_makes_warnings_fail(
        capsys: pytest.CaptureFixture[str], redis_url: str, redis_client: redis.Redis,
        policy_path: Path) -> None:
    base = ["-p", str(policy_path), "--url", redis_url, "--no-scan", "--json"]
    assert stats(capsys, *base)[0] == 0  # only warnings: noeviction, unbounded
    assert stats(capsys, *base, "--strict")[0] == 1
    counters(redis_client, "price", 70, 30)
    code, out, _ = stats(capsys, *base)
    assert code == 1
    failed = [c for c in json.loads(out)["checks"] if c["status"] == "fail"]
    assert [(c["check"], c["namespace"], c["value"], c["threshold"]) for c in failed] == [
        ("hit_rate", "price", 0.7, 0.8)]


def test_too_little_traffic_is_neither_pass_nor_fail(capsys: pytest.CaptureFixture[str], redis_url: str,
                                                     redis_client: redis.Redis, policy_path: Path) -> None:
    counters(redis_client, "price", 0, 99)
    code, out, _ = stats(capsys, "-p", str(policy_path), "--url", redis_url, "--no-scan", "--json")
    price = next(ns for ns in json.loads(out)["namespaces"] if ns["namespace"] == "price")
    assert (code, price["hit_rate"], price["status"]) == (0, 0.0, "too_little_traffic")


def test_memory_past_70_percent_fails_with_exit_1(capsys: pytest.CaptureFixture[str],
                                                  redis_factory: Any, policy_path: Path) -> None:
    server = redis_factory("--maxmemory", "8mb", "--maxmemory-policy", "allkeys-lru")
    client = server.client()
    i = 0
    while int(client.info("memory")["used_memory"]) < 0.8 * 8 * 1024 * 1024:
        pipe = client.pipeline(transaction=False)
        for _ in range(20):
            pipe.set(f"t:product:{i}", b"v" * 10_240, px=600_000)
            i += 1
        pipe.execute()
    code, out, _ = stats(capsys, "-p", str(policy_path), "--url", server.url)
    assert code == 1
    assert "FAIL" in out and "used memory" in out and "maxmemory" in out
    client.close()


def test_text_dashboard_when_piped(capsys: pytest.CaptureFixture[str], redis_url: str,
                                   policy_path: Path) -> None:
    code, out, err = stats(capsys, "-p", str(policy_path), "--url", redis_url)
    assert code == 0
    for expected in ("cachectl stats", "Server", "hit rate", "Namespaces", "product *",
                     "noeviction", "Result: WARN"):
        assert expected in out
    assert "\x1b[" not in out and err == ""


def test_prometheus_output_parses(capsys: pytest.CaptureFixture[str], redis_url: str,
                                  redis_client: redis.Redis, policy_path: Path) -> None:
    counters(redis_client, "product", 96, 4)
    code, out, _ = stats(capsys, "-p", str(policy_path), "--url", redis_url, "--format", "prometheus")
    assert code == 0
    families = {f.name: f for f in text_string_to_metric_families(out)}
    node = redis_url.split("//")[1].split("/")[0]
    assert families["cachectl_up"].samples[0].labels == {"node": node}
    ratio = {s.labels["cache_namespace"]: s.value for s in families["cachectl_namespace_hit_ratio"].samples}
    assert ratio == {"product": 0.96}
    assert "price" not in ratio  # no traffic: no ratio, not a made-up zero
    assert {s.labels["cache_namespace"] for s in families["cachectl_namespace_keys"].samples} == {
        "product", "price"}
    assert families["cachectl_memory_max_bytes"].samples[0].value == 0


@pytest.mark.parametrize("args", [
    ["-n", "prodcut"], ["--interval", "soon"], ["--window", "10s"], ["--json", "--format", "prometheus"],
    ["--format", "yaml"], ["--serve", ":x"], ["--serve", ":0", "--json"],
])
def test_bad_invocations_exit_2(capsys: pytest.CaptureFixture[str], redis_url: str, policy_path: Path,
                                args: list[str]) -> None:
    code, out, err = stats(capsys, "-p", str(policy_path), "--url", redis_url, *args)
    assert code == 2 and out == "" and err.startswith("error:") and "Traceback" not in err


def test_unreachable_redis_exits_3_without_the_password(capsys: pytest.CaptureFixture[str],
                                                        policy_path: Path) -> None:
    code, out, err = stats(capsys, "-p", str(policy_path),
                           "--url", f"redis://:hunter2@127.0.0.1:{free_port()}/0", "--timeout", "1")
    assert code == 3 and out == ""
    assert "hunter2" not in err and "cannot connect" in err


def test_no_scan_waits_the_interval_once(capsys: pytest.CaptureFixture[str],
                                         redis_url: str, policy_path: Path) -> None:
    start = time.monotonic()
    code = main(["stats", "-p", str(policy_path), "--url", redis_url, "--no-scan",
                 "--interval", "3s", "--json"])
    elapsed = time.monotonic() - start
    capsys.readouterr()
    # the interval once, and at most 2 s besides (what a loaded machine adds); waiting the
    # interval twice would take 6 s
    assert code == 0 and 3.0 <= elapsed < 5.0


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*CACHECTL, "stats", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_serve_exposes_metrics_over_http_and_stops_on_ctrl_c(redis_url: str, redis_client: redis.Redis,
                                                             policy_path: Path) -> None:
    counters(redis_client, "product", 50, 50)
    port = free_port()
    proc = _spawn("-p", str(policy_path), "--url", redis_url, "--interval", "200ms",
                  "--serve", f"127.0.0.1:{port}")
    try:
        bodies = []
        deadline = time.monotonic() + 15
        while len(bodies) < 2:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    bodies.append(resp.read().decode())
                redis_client.get("t:product:1")  # traffic between the two scrapes
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        first, second = ({f.name: f for f in text_string_to_metric_families(b)} for b in bodies)
        assert first["cachectl_namespace_window_requests"].samples[0].value == 100
        # each scrape takes fresh snapshots: the GET between them is a miss in the second one
        assert second["cachectl_keyspace_misses"].samples[0].value >= \
            first["cachectl_keyspace_misses"].samples[0].value + 1
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err


def test_watch_json_streams_reports_until_ctrl_c(redis_url: str, policy_path: Path) -> None:
    proc = _spawn("-p", str(policy_path), "--url", redis_url, "--interval", "200ms",
                  "--no-scan", "--json", "--watch", "0.2")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert docs[0]["generated_at"] <= docs[1]["generated_at"]
    assert proc.returncode == 0, err


def test_serve_starts_while_redis_is_down_and_reports_up_0(policy_path: Path) -> None:
    port = free_port()
    proc = _spawn("-p", str(policy_path), "--url", f"redis://127.0.0.1:{free_port()}/0",
                  "--timeout", "0.5", "--serve", f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        up = next(f for f in text_string_to_metric_families(body) if f.name == "cachectl_up")
        assert up.samples[0].value == 0 and up.samples[0].labels == {"reason": "connection"}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "cannot connect" in err  # the reason in words goes to the log, not into a label


def test_a_failing_hit_rate_gets_the_captured_traces_recommendation(
        capsys: pytest.CaptureFixture[str], redis_url: str, redis_client: redis.Redis,
        tmp_path: Path) -> None:
    from cachectl import Cache
    from tests.support.cache import PATIENT

    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY_TEXT + "trace: {sample: 100%}\n")
    with Cache.from_policy(path, redis_url, env={}, **PATIENT) as cache:
        for _ in range(2):  # every key read twice: a 50 % hit rate, below critical's 95 %
            for i in range(150):
                cache.get_or_load("product", lambda: {"name": "lamp"}, id=i)
        for i in range(150):  # and price well above its 80 %
            for _ in range(10):
                cache.get_or_load("price", lambda: 3999, sku=i)
    code, out, err = stats(capsys, "-p", str(path), "--url", redis_url, "--no-scan")
    assert code == 1, err
    lines = [line for line in out.splitlines() if "hint:" in line]
    assert lines == ["  hint: product: model of the captured trace (300 events at 1): no TTL reaches 95%; "
                     "the best, 1s, reaches 50.0%"]
    # the same figures in --json, on the failing namespace only
    code, out, err = stats(capsys, "-p", str(path), "--url", redis_url, "--no-scan", "--json")
    assert code == 1, err
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    hints = {ns["namespace"]: ns["model_hint"] for ns in doc["namespaces"]}
    assert hints == {"product": {
        "events": 300, "sample_rate": 1.0, "threshold": 0.95, "ttl_s": None, "hit_rate": None,
        "load_rate_per_s": None, "memory_bytes": None, "best_ttl_s": 1.0, "best_hit_rate": 0.5,
        "trace_dropped": 0}, "price": None}
    # a threshold the trace's hit rate (50 %) meets, while the window's counters miss it (other
    # processes' misses, say): the hint gives the TTL, its hit rate, origin load and memory
    path.write_text(path.read_text().replace("critical: true, ", "hit_rate: 40%, "))
    counters(redis_client, "product", 0, 1000)
    code, out, err = stats(capsys, "-p", str(path), "--url", redis_url, "--no-scan", "--json")
    assert code == 1, err
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    hint = next(ns["model_hint"] for ns in doc["namespaces"] if ns["namespace"] == "product")
    assert (hint["events"], hint["threshold"], hint["hit_rate"]) == (300, 0.4, 0.5)
    assert hint["ttl_s"] is not None and hint["ttl_s"] <= hint["best_ttl_s"]
    assert hint["load_rate_per_s"] > 0 and hint["memory_bytes"] > 0
    code, out, _ = stats(capsys, "-p", str(path), "--url", redis_url, "--no-scan")
    (line,) = [line for line in out.splitlines() if "hint:" in line]
    assert line.startswith(f"  hint: product: model of the captured trace (300 events at 1): "
                           f"ttl {hint['ttl_s']:g}s reaches 50.0%, maxmemory >= ")
    # without a trace, no hint (and the same verdict)
    redis_client.delete(*redis_client.keys("t:cachectl:trace:*"))
    code, out, _ = stats(capsys, "-p", str(path), "--url", redis_url, "--no-scan")
    assert code == 1 and "hint:" not in out
    code, out, _ = stats(capsys, "-p", str(path), "--url", redis_url, "--no-scan", "--json")
    assert code == 1 and all(ns["model_hint"] is None for ns in json.loads(out)["namespaces"])
