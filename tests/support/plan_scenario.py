"""A policy change that exercises every kind of plan row, and a keyspace written under the
old policy, for the plan/apply tests on a standalone server and on a cluster.

OLD -> NEW: product's ttl 6h -> 1h (keys above the new maximum are clamped), search
re-keyed by template, price re-keyed by version, banner removed, cart renamed basket,
session's stale lengthened (no clamp), stock untouched, promo added, hit_rate raised.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachectl.freshness import ttl_bounds_ms
from cachectl.keyspace import NamespaceMatcher
from cachectl.policy import Policy
from cachectl.policy.template import hash_value

OLD = """\
version: 1
redis: {key_prefix: shop}
thresholds: {hit_rate: 0.8}
namespaces:
  product: {key: "product:{id}", ttl: 6h, stale: 10m}
  search:  {key: "search:{q}", ttl: 2h}
  price:   {key: "price:{sku}", ttl: 2h, version: 1}
  banner:  {key: "banner:{id}", ttl: 2h}
  cart:    {key: "cart:{user}", ttl: 2h}
  stock:   {key: "stock:{sku}", ttl: 2h}
  session: {key: "session:{token}", ttl: 24h}
"""

NEW = """\
version: 1
redis: {key_prefix: shop}
thresholds: {hit_rate: 0.85}
namespaces:
  product: {key: "product:{id}", ttl: 1h, stale: 10m}
  search:  {key: "search:{q:hash}", ttl: 2h}
  price:   {key: "price:{sku}", ttl: 2h, version: 2}
  basket:  {key: "cart:{user}", ttl: 2h}
  stock:   {key: "stock:{sku}", ttl: 2h}
  session: {key: "session:{token}", ttl: 24h, stale: 5m}
  promo:   {key: "promo:{id}", ttl: 1h}
"""

H = 3_600_000
_SCRIPT = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "cachectl"
CACHECTL = [str(_SCRIPT)] if _SCRIPT.exists() else [
    sys.executable, "-c", "from cachectl.cli import main; main()"]
INTERNAL = b"shop:cachectl:"


@dataclass(frozen=True)
class Seeded:
    """What was written: every key with its PTTL (-1: none), and which must go."""

    ttl_ms: dict[bytes, int]
    removed: frozenset[bytes]  # keys of removed and re-keyed namespaces' old templates
    clamped: frozenset[bytes]  # product keys whose TTL is above the new maximum (or none)
    foreign: frozenset[bytes]


def keyspace(scale: int = 1) -> Seeded:
    """The keys the old policy's applications wrote, plus foreign ones (``scale`` multiplies
    the banner namespace, for runs long enough to interrupt)."""
    ttl: dict[bytes, int] = {}

    def put(keys: Iterable[str], ms: int) -> set[bytes]:
        made = {k.encode() for k in keys}
        ttl.update(dict.fromkeys(made, ms))
        return made

    above = put((f"shop:product:{i}" for i in range(60)), 5 * H)
    above |= put((f"shop:product:forever{i}" for i in range(2)), -1)
    put((f"shop:product:{i}" for i in range(60, 100)), H // 2)
    removed = put((f"shop:search:q{i}" for i in range(50)), H)
    # the new template's keys already written (a canary deploy): the old template matches
    # them too, and they must stay
    put((f"shop:search:{hash_value(f'q{i}')}" for i in range(5)), H)
    removed |= put((f"shop:price:v1:{i}" for i in range(40)), H)
    put((f"shop:price:v2:{i}" for i in range(10)), H)
    removed |= put((f"shop:banner:{i}" for i in range(30 * scale)), H)
    put((f"shop:cart:{i}" for i in range(20)), H)
    put((f"shop:stock:{i}" for i in range(25)), H)
    put((f"shop:session:{i}" for i in range(10)), 20 * H)
    foreign = put((f"other:{i}" for i in range(20)), -1)
    foreign |= put(["shop:unknown:1", "shop:banner"], H)
    return Seeded(ttl, frozenset(removed), frozenset(above), frozenset(foreign))


def write(client: Any, seeded: Seeded) -> None:
    """Write every key (value: its own name, so each DUMP differs) in one pipeline."""
    pipe = client.pipeline(transaction=False)
    for key, ms in seeded.ttl_ms.items():
        pipe.set(key, b"value of " + key, px=ms if ms > 0 else None)
    pipe.execute()


def snapshot(nodes: Iterable[Any]) -> dict[bytes, tuple[bytes, int]]:
    """Every key on these primaries: (DUMP, PTTL)."""
    out: dict[bytes, tuple[bytes, int]] = {}
    for node in nodes:
        keys = list(node.scan_iter(count=1000))
        pipe = node.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
            pipe.pttl(key)
        replies = pipe.execute()
        for i, key in enumerate(keys):
            out[key] = (replies[2 * i], replies[2 * i + 1])
    return out


def check_applied(before: dict[bytes, tuple[bytes, int]], after: dict[bytes, tuple[bytes, int]],
                  seeded: Seeded, new: Policy) -> None:
    """After apply: exactly the removed keys are gone, every other value is byte-for-byte
    what it was, every policy key has a TTL the new policy allows, nothing was lengthened."""
    after = {k: v for k, v in after.items() if not k.startswith(INTERNAL)}  # the audit stream
    missing, extra = set(before) - seeded.removed - set(after), set(after) - set(before)
    assert not missing and not extra and not set(after) & seeded.removed, (
        sorted(missing)[:5], sorted(extra)[:5], sorted(set(after) & seeded.removed)[:5])
    matcher = NamespaceMatcher.from_policy(new)
    for key, (dump, pttl) in after.items():
        assert dump == before[key][0], key
        if key in seeded.foreign:
            was = before[key][1]
            assert pttl == -1 if was == -1 else 0 <= was - pttl < 600_000, key
            continue
        ns = matcher.namespace_of(key)
        assert ns is not None, key
        assert 0 < pttl <= ttl_bounds_ms(ns)[1], (key, pttl)
        if key not in seeded.clamped:
            assert pttl <= before[key][1], key  # never lengthened
            assert before[key][1] - pttl < 600_000, key  # and left alone (only time passed)


def kill_mid_apply(args: list[str], key_count: Callable[[], int], seeded: Seeded) -> None:
    """Run ``cachectl apply ARGS --yes`` slowly, SIGKILL it once 500 keys are gone (and not
    all), then rerun it to the end; assert both happened as said."""
    slow = [*CACHECTL, "apply", *args, "--yes", "--rate", "2000", "--batch", "100"]
    total = key_count()
    proc = subprocess.Popen(slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "NO_COLOR": "1"})
    deadline = time.monotonic() + 60
    while key_count() > total - 500 and time.monotonic() < deadline:
        time.sleep(0.02)  # polled: wait until the removal is well under way
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    left = key_count()
    assert total - left >= 500 and left > total - len(seeded.removed), "not killed mid-way"
    rerun = subprocess.run([*CACHECTL, "apply", *args, "--yes"], capture_output=True, text=True,
                           timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
