"""A real Prometheus scrapes `cachectl stats --serve` with the generated rules loaded, while a
workload through cachectl.Cache drives one namespace's hit rate below its threshold: the alert
is read back from Prometheus's HTTP API, pending and then firing; the healthy namespace never alerts.

Short intervals (scrape and evaluation every 2 s, a 10 s rate window, `for: 4s`) keep it to
seconds; under load the test waits for each state with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cachectl import Cache
from cachectl.observe import ObserveOptions, generate
from cachectl.observe.rules import RuleOptions
from cachectl.policy import load_policy
from tests.cli.test_stats_cli import CACHECTL, REPO
from tests.support.cache import PATIENT
from tests.support.prometheus import PrometheusServer, binary
from tests.support.redis_server import RedisServer, free_port

POLICY_TEXT = """\
version: 1
redis: {key_prefix: obs}
thresholds: {min_requests: 20, critical_hit_rate: 0.95}
defaults: {ttl: 10m}
namespaces:
  product: {key: "product:{id}", critical: true}
  price:   {key: "price:{sku}", critical: true}
"""


@pytest.fixture
def exporter(redis_factory: Callable[..., RedisServer],
             tmp_path: Path) -> Iterator[tuple[RedisServer, Path, int]]:
    binary("prometheus")  # skip early, with the reason, where it is not installed
    server = redis_factory()
    policy = tmp_path / "cachectl.yaml"
    policy.write_text(POLICY_TEXT)
    port = free_port()
    proc = subprocess.Popen(
        [*CACHECTL, "stats", "-p", str(policy), "--url", server.url, "--interval", "200ms",
         "--no-scan", "--serve", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=REPO)
    try:
        yield server, policy, port
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert "Traceback" not in err, err


def _alerts(prom: PrometheusServer, namespace: str) -> list[dict[str, Any]]:
    return [a for a in prom.api("alerts")["alerts"]
            if a["labels"].get("alertname") == "CachectlHitRateLow"
            and a["labels"].get("cache_namespace") == namespace]


def test_the_generated_alert_goes_pending_then_firing_on_a_real_prometheus(
        exporter: tuple[RedisServer, Path, int], tmp_path: Path) -> None:
    server, policy_path, port = exporter
    policy = load_policy(policy_path, env={})
    rules = next(f for f in generate(policy, ObserveOptions(rules=RuleOptions(
        window_ms=10_000, for_ms=4_000, policy_file="cachectl.yaml"))) if f.kind == "rules")
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "cachectl.rules.yml").write_text(rules.text)
    prom = PrometheusServer(tmp_path / "prom", {
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"},
        "rule_files": ["cachectl.rules.yml"],
        "scrape_configs": [{"job_name": "cachectl",
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }).start()
    stop = threading.Event()
    missing = threading.Event()  # set: product reads new keys every time (all misses)
    cache = Cache.from_policy(policy, server.url, counters_interval_s=0.2, **PATIENT)

    def workload() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            product_id = f"n{i}" if missing.is_set() else str(i % 5)
            cache.get_or_load("product", lambda: {"p": 1}, id=product_id)
            cache.get_or_load("price", lambda: {"c": 1}, sku=str(i % 5))
            time.sleep(0.005)

    worker = threading.Thread(target=workload, daemon=True)
    worker.start()
    try:
        def wait_for(what: str, condition: Callable[[], bool], timeout_s: float = 90) -> None:
            deadline = time.monotonic() + timeout_s
            while not condition():
                assert prom.proc is not None and prom.proc.poll() is None, prom.log()[-2000:]
                assert time.monotonic() < deadline, f"never {what}: {prom.api('alerts')} " \
                    f"{prom.api('targets')['activeTargets']}"
                time.sleep(0.5)

        # healthy first: Prometheus scrapes the exporter and records a hit ratio above 95 %
        def healthy() -> bool:
            found = prom.api("query", query='cachectl:namespace_hit_ratio:rate10s{cache_namespace="product"}')
            return bool(found["result"]) and float(found["result"][0]["value"][1]) > 0.95
        wait_for("scraped and healthy", healthy)
        assert _alerts(prom, "product") == []

        missing.set()
        seen: list[str] = []

        def state(wanted: str) -> bool:
            states = [a["state"] for a in _alerts(prom, "product")]
            seen.extend(s for s in states if s not in seen)
            return wanted in states
        wait_for("pending", lambda: state("pending") or state("firing"))
        wait_for("firing", lambda: state("firing"))
        assert seen[0] == "pending", seen  # `for:` held it back before it fired
        firing = _alerts(prom, "product")[0]
        assert firing["labels"]["severity"] == "critical" and firing["labels"]["threshold"] == "0.95"
        assert float(firing["value"]) < 0.95
        assert _alerts(prom, "price") == []  # the healthy namespace stays quiet
        with urllib.request.urlopen(f"{prom.url}/api/v1/rules", timeout=10) as resp:
            assert b"CachectlHitRateLow" in resp.read()
    finally:
        stop.set()
        worker.join(10)
        cache.close()
        prom.stop()
