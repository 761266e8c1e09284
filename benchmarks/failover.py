"""Failover as the application sees it: cachectl.Cache under steady traffic through Sentinel.

Starts a throwaway Sentinel deployment (tests/support/sentinel.py: a primary, a replica,
3 Sentinels, quorum 2, down-after-milliseconds 1000, failover-timeout 3000), a reader
thread (``get_or_load`` on 50 products, the in-process L1 on) and a writer thread
(``set`` of a new price every 5 ms), then fails the primary over, once per mode:

  kill      the primary is killed with SIGKILL; the Sentinels notice after
            down-after-milliseconds, elect a leader and promote the replica
  failover  SENTINEL FAILOVER moves the primary (no fault: a planned switch)
  cluster-kill
            one primary of a 3-primary cluster (tests/support/cluster.py, cluster-node-timeout
            1000) killed with SIGKILL; the write figures count the writes to its slots

and reports, from the client's side: the write gap (last successful write before the
fault to the first one after), when the Sentinels had promoted the replica, how long
after that promotion writes resumed, the reads that raised (the goal: none) and the
reads answered without Redis (the loader or the L1, counted as Redis errors by the
library), the writes refused during the gap and the acknowledged writes missing from
the new primary afterwards (lost).

    .venv/bin/python benchmarks/failover.py [--modes kill,failover] [--json]
"""

from __future__ import annotations

import os
import sys

# for tests.support, which is not installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.support import shop
from tests.support.sentinel import (
    DOWN_AFTER_MS,
    FAILOVER_TIMEOUT_MS,
    MASTER_NAME,
    SentinelFixture,
)

MODES = ("kill", "failover", "cluster-kill")
WRITE_EVERY_S = 0.005
READ_EVERY_S = 0.002
LIBRARY_TIMEOUT_MS = 200  # per Redis call: a dead primary costs a caller at most this
SETTLE_WRITES = 50  # successful writes before the fault, and after the promotion


@dataclass(frozen=True)
class FailoverFigures:
    """One failover, as the application saw it; times in seconds from the fault."""

    mode: str
    promoted_s: float  # the Sentinels named the replica primary and it said so
    last_write_before_s: float  # the last successful write before the fault (<= 0)
    first_write_after_s: float  # the first successful write after it
    write_gap_s: float  # first after - last before
    writes_resumed_after_promotion_s: float  # first after - promoted (negative: before it)
    writes_acked: int
    writes_refused: int  # Cache.set returned False (Redis unusable): during the gap
    writes_lost: int  # acknowledged, but not on the new primary afterwards
    last_lost_s: float | None  # when the last lost write was acknowledged
    reads: int
    read_errors: int  # raised to the caller: the goal is none
    reads_wrong: int  # a value that was not the loader's
    reads_without_redis: int  # answered by the loader or the L1 while Redis failed

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


class _Traffic:
    """The reader and the writer threads, and what each call returned, when."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.stop = threading.Event()
        self.writes: list[tuple[float, int, bool]] = []  # (monotonic, i, stored)
        self.reads = 0
        self.read_errors: list[BaseException] = []
        self.reads_wrong = 0
        self.threads = [threading.Thread(target=self._write, daemon=True),
                        threading.Thread(target=self._read, daemon=True)]

    def _write(self) -> None:
        i = 0
        while not self.stop.is_set():
            stored = bool(self.cache.set("price", i, sku=f"w{i}"))
            self.writes.append((time.monotonic(), i, stored))
            i += 1
            time.sleep(WRITE_EVERY_S)

    def _read(self) -> None:
        i = 0
        while not self.stop.is_set():
            pid = i % 50
            try:
                value = self.cache.get_or_load("product", lambda p=pid: {"id": p}, id=pid)
            except BaseException as exc:  # exactly what the goal rules out
                self.read_errors.append(exc)
            else:
                self.reads_wrong += value != {"id": pid}
            self.reads += 1
            i += 1
            time.sleep(READ_EVERY_S)

    def ok_writes_since(self, t: float) -> int:
        return sum(1 for at, _i, ok in list(self.writes) if ok and at >= t)

    def __enter__(self) -> _Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")


def _redis_errors(cache: Any) -> int:
    counters = cache.local_counters().get("product")
    return int(counters.redis_errors) if counters is not None else 0


def run_failover(deployment: SentinelFixture, policy: Path, mode: str) -> FailoverFigures:
    """Fail ``deployment``'s primary over (``mode``: kill or failover) under traffic."""
    from cachectl import Cache
    from cachectl.connection import build_settings

    if mode not in ("kill", "failover"):
        raise ValueError(f"mode {mode!r}: kill or failover")
    settings = build_settings(url_flag=None, env={}, sentinels=tuple(deployment.sentinel_addrs),
                              master_name=deployment.master_name)
    old = deployment.current_primary()

    def fault() -> None:
        if mode == "kill":
            old.kill()
        else:
            deployment.sentinels[0].client().execute_command(  # type: ignore[no-untyped-call]
                "SENTINEL", "FAILOVER", MASTER_NAME)

    cache = Cache.from_policy(policy, settings=settings, timeout_ms=LIBRARY_TIMEOUT_MS,
                              connect_timeout_ms=LIBRARY_TIMEOUT_MS, counters=True,
                              l1_max_items=1000)
    new_primary: list[Any] = []

    def promoted() -> None:
        new_primary.append(deployment.wait_new_primary(old, timeout_s=30))

    figures = _under_traffic(cache, mode, fault, promoted,
                             lambda: new_primary[0].client(), lambda _key: True)
    if mode == "failover":  # the old primary must follow (the Sentinels' INFO round is 10 s)
        old.client().execute_command(  # type: ignore[no-untyped-call]
            "REPLICAOF", "127.0.0.1", new_primary[0].port)
    return figures


def run_cluster_kill(cluster: Any, policy: Path) -> FailoverFigures:
    """SIGKILL one primary of a 3-primary cluster under traffic; the write figures count
    only the writes whose key lives on that primary's slots (the others never stop)."""
    from redis.crc import key_slot

    from cachectl import Cache
    from cachectl.connection import build_settings

    victim = cluster.primary_servers()[0]
    ranges = [(int(first), int(last)) for first, last, primary, *_ in
              victim.client().execute_command("CLUSTER", "SLOTS")
              if int(primary[1]) == victim.port]

    def on_victim(key: str) -> bool:
        slot = key_slot(key.encode())
        return any(first <= slot <= last for first, last in ranges)

    settings = build_settings(url_flag=cluster.url, env={}, cluster=True)
    cache = Cache.from_policy(policy, settings=settings, env={}, timeout_ms=LIBRARY_TIMEOUT_MS,
                              connect_timeout_ms=LIBRARY_TIMEOUT_MS, counters=True,
                              l1_max_items=1000)
    return _under_traffic(cache, "cluster-kill", lambda: cluster.kill_primary(victim),
                          lambda: cluster.wait_promoted(victim, timeout_s=30),
                          cluster.client, on_victim)


def _under_traffic(cache: Any, mode: str, fault: Any, wait_promoted: Any, read_back: Any,
                   affected: Any) -> FailoverFigures:
    """Run the traffic, cause ``fault``, wait for ``wait_promoted``, and measure; the write
    figures count the writes whose key ``affected`` says the fault touches."""
    def key(i: int) -> str:
        return f"{shop.PREFIX}:price:w{i}"

    with cache, _Traffic(cache) as traffic:
        _wait(lambda: traffic.ok_writes_since(0) >= SETTLE_WRITES and traffic.reads >= 50,
              30, "traffic before the fault")
        errors_before = _redis_errors(cache)
        started = time.monotonic()
        fault()
        wait_promoted()
        promoted = time.monotonic()
        _wait(lambda: sum(1 for at, i, ok in list(traffic.writes)
                          if ok and at >= promoted and affected(key(i))) >= SETTLE_WRITES,
              30, "writes after the promotion")
        without_redis = _redis_errors(cache) - errors_before
    writes = [(at, i, ok) for at, i, ok in traffic.writes if affected(key(i))]
    before = [at for at, _i, ok in writes if ok and at < started]
    after = [at for at, _i, ok in writes if ok and at >= started]
    # what the client was told was stored must be there afterwards (a SIGKILL loses the
    # writes the replica had not received yet: Redis replicates asynchronously)
    acked = [(at, i) for at, i, ok in writes if ok]
    client = read_back()
    stored = [client.get(key(i)) for _at, i in acked]
    lost = [at - started for (at, i), value in zip(acked, stored, strict=True)
            if value != str(i).encode()]
    last_before, first_after = max(before) - started, min(after) - started
    return FailoverFigures(
        mode=mode, promoted_s=promoted - started, last_write_before_s=last_before,
        first_write_after_s=first_after, write_gap_s=first_after - last_before,
        writes_resumed_after_promotion_s=min(after) - promoted,
        writes_acked=len(acked), writes_refused=sum(1 for _at, _i, ok in writes if not ok),
        writes_lost=len(lost), last_lost_s=max(lost) if lost else None, reads=traffic.reads,
        read_errors=len(traffic.read_errors),
        reads_wrong=traffic.reads_wrong, reads_without_redis=without_redis)


def measure(mode: str, workdir: Path) -> FailoverFigures:
    """A fresh deployment in ``workdir``, one failover, everything stopped afterwards."""
    if mode == "cluster-kill":
        from tests.support.cluster import RedisClusterFixture

        cluster = RedisClusterFixture(workdir / "cluster").start()
        try:
            cluster.wait_healthy()
            # every replica synced first: a write its primary took before the link was up
            # would be lost for a reason that is not the failover's
            _wait(lambda: _replicas_synced(cluster), 30, "every replica's link up")
            return run_cluster_kill(cluster, shop.write_policy(workdir / "policy", cluster=True))
        finally:
            cluster.stop()
    policy = shop.write_policy(workdir / "policy")
    deployment = SentinelFixture(workdir / "sentinel").start()
    try:
        return run_failover(deployment, policy, mode)
    finally:
        deployment.stop()


def _replicas_synced(cluster: Any) -> bool:
    links = []
    for node in cluster.live_nodes():
        info = node.client().info("replication")
        if info.get("role") == "slave":
            links.append(info.get("master_link_status") == "up"
                         and not info.get("master_sync_in_progress"))
    return len(links) == len(cluster.live_nodes()) // 2 and all(links)


def settings_text(mode: str = "kill") -> str:
    """The tuned settings a run used (the server side, then the library's)."""
    from tests.support.cluster import NODE_TIMEOUT_MS

    server = (f"cluster: 3 primaries + 3 replicas, cluster-node-timeout {NODE_TIMEOUT_MS}"
              if mode == "cluster-kill" else
              f"Sentinel: down-after-milliseconds {DOWN_AFTER_MS}, failover-timeout "
              f"{FAILOVER_TIMEOUT_MS}, parallel-syncs 1, quorum 2 of 3")
    return (f"{server}; library: timeout_ms {LIBRARY_TIMEOUT_MS}, connect_timeout_ms "
            f"{LIBRARY_TIMEOUT_MS}, L1 on")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="cachectl-failover-") as tmp:
        for mode in args.modes.split(","):
            results.append(measure(mode, Path(tmp) / mode))
    if args.json:
        sys.stdout.write(json.dumps({"runs": [{"settings": settings_text(r.mode), **r.to_json()}
                                              for r in results]}, indent=2) + "\n")
        return 0
    for r in results:
        sys.stdout.write(f"{settings_text(r.mode)}\n")
        sys.stdout.write(
            f"{r.mode:8}  promoted {r.promoted_s:.2f}s after the fault; write gap "
            f"{r.write_gap_s:.2f}s; writes resumed {r.writes_resumed_after_promotion_s:.3f}s "
            f"after promotion; reads {r.reads} ({r.read_errors} raised, {r.reads_wrong} "
            f"wrong, {r.reads_without_redis} without Redis); writes {r.writes_acked} acked, "
            f"{r.writes_refused} refused, {r.writes_lost} lost"
            + (f" (the last acknowledged {r.last_lost_s:.2f}s after the fault)"
               if r.last_lost_s is not None else "") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
