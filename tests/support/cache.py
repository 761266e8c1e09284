"""What the cache tests share: the policy they run on, its PTTL bands, and small helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from cachectl.counter_format import read_window

# item: grace G = 10 s; fresh PTTL > 10000, stale (5000, 10000], fail-safe (0, 5000]
POLICY = """\
version: 1
redis: {key_prefix: t}
namespaces:
  item:   {key: "item:{id}", ttl: 10s, stale: 5s, stale_if_error: 10s, jitter: 0%, tags: [cat],
           max_value_bytes: 1KiB}
  plain:  {key: "plain:{id}", ttl: 10m, jitter: 10%, tags: [cat]}
  other:  {key: "other:{id}", ttl: 10m, tags: [misc]}
  early:  {key: "early:{id}", ttl: 10s, stale: 1s, jitter: 0%, early_refresh: true}
  search: {key: "search:{query:hash}:{page}", ttl: 1m}
"""
FRESH_PTTL, STALE_PTTL, FAIL_SAFE_PTTL = 19_000, 9_000, 3_000
# generous timeouts: these tests are about the logic, on a busy CI machine (faults: test_cache_faults);
# the library's 10 ms default would turn a read the machine's load delays into a fallback
PATIENT = {"timeout_ms": 2000, "connect_timeout_ms": 2000}
QUIET = {"counters_interval_s": 0.05, **PATIENT}


def write_policy(tmp_path: Path, text: str = POLICY) -> Path:
    path = tmp_path / "cachectl.yaml"
    path.write_text(text)
    return path


def put(client: redis.Redis, key: str, value: Any, pttl_ms: int) -> None:
    client.set(key, json.dumps(value, separators=(",", ":")), px=pttl_ms)


def wait_for(predicate: Callable[[], Any], timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passed; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def counters(client: redis.Redis, name: str) -> dict[str, int]:
    """The namespace's counters as written to Redis, over the last few minutes."""
    minute = int(time.time() // 60)
    got = read_window(client, "t:cachectl", range(minute - 2, minute + 2))
    return got[name].as_dict() if name in got else {}
