"""Benchmark: `cachectl apply OLD NEW --yes` against a hand-written SCAN + PEXPIRE/UNLINK loop.

The change: ``product``'s TTL drops from 6 h to 1 h and ``banner`` is retired. A
throwaway redis-server (free port, never 6379) holds 1,000,000 keys: 300,000
``shop:product:{id}`` written with a 5 h TTL (above the new maximum: to clamp),
300,000 ``shop:banner:{id}`` (to remove) and 400,000 ``shop:stock:{sku}`` that
must not be touched. Both contenders run as their own Python process (start-up
included; cachectl also measures the keyspace first, from a sample, and writes two
audit entries: work the loop does not do). The hand-written loop is what an operator
would write: one SCAN over everything, ``PEXPIRE key 3600000 LT`` pipelined for
product keys, UNLINK per 1,000 banner keys. While each runs, another process PINGs
every millisecond.

Prints both times, the ratio, PING p50/p99/max during each, the server's CPU time and
the commands it logged as slower than 1 ms (SLOWLOG: what blocked other clients, as
the server saw it, whatever the host's load), and checks the result
(no banner key left, every product key at or below the new maximum, stock intact).
``--commandstats`` prints, per run, the commands the server ran (INFO commandstats:
calls and server milliseconds; commands a script ran count in their own row and in
EVALSHA's).

    .venv/bin/python benchmarks/plan.py [--scale 1.0] [--rounds 2] [--commandstats]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, benchmarks.flush

import argparse
import json
import os
import re
import shutil
import subprocess
import time

import redis

from benchmarks.flush import (
    pipe_load,
    resp_file,
    server_cpu_s,
    slow_commands,
    start_slowlog,
    with_pings,
)
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work" / "plan"
REPO = ROOT.parent
H = 3_600_000

OLD = """\
version: 1
redis: {key_prefix: shop}
namespaces:
  product: {key: "product:{id}", ttl: 6h}
  banner:  {key: "banner:{id}", ttl: 1h}
  stock:   {key: "stock:{sku}", ttl: 2h}
"""
NEW = """\
version: 1
redis: {key_prefix: shop}
namespaces:
  product: {key: "product:{id}", ttl: 1h}
  stock:   {key: "stock:{sku}", ttl: 2h}
"""


def cachectl_apply(port: int, old: Path, new: Path) -> dict[str, object]:
    cli = REPO / ".venv" / "bin" / "cachectl"
    start = [str(cli)] if cli.exists() else [
        sys.executable, "-c", "from cachectl.cli import main; main()"]
    cmd = [*start, "apply", str(old), str(new), "--url", f"redis://127.0.0.1:{port}/0",
           "--yes", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def hand_loop(port: int) -> tuple[int, int]:
    """One SCAN; PEXPIRE … LT pipelined per SCAN reply for product, UNLINK per 1000 banners."""
    r = redis.Redis(port=port)
    product = re.compile(rb"shop:product:[^:]+").fullmatch
    banner = re.compile(rb"shop:banner:[^:]+").fullmatch
    doomed: list[bytes] = []
    clamped = removed = 0
    cursor = 0
    while True:
        cursor, keys = r.scan(cursor=cursor, count=1000)
        pipe = r.pipeline(transaction=False)
        for key in filter(product, keys):
            pipe.pexpire(key, H, lt=True)
        clamped += sum(1 for ok in pipe.execute() if ok)
        doomed.extend(filter(banner, keys))
        if len(doomed) >= 1000:
            removed += r.unlink(*doomed)
            doomed = []
        if cursor == 0:
            break
    if doomed:
        removed += r.unlink(*doomed)
    return clamped, removed


def hand_loop_process(port: int) -> tuple[int, int]:
    out = subprocess.run([sys.executable, __file__, "--hand-loop", str(port)],
                         capture_output=True, text=True, check=True)
    clamped, removed = out.stdout.split()
    return int(clamped), int(removed)


def commandstats(r: redis.Redis) -> dict[str, tuple[int, int]]:
    """Per command, (calls, server µs) since start-up: INFO commandstats."""
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in r.info("commandstats").items()}


def commandstats_delta(before: dict[str, tuple[int, int]],
                       after: dict[str, tuple[int, int]]) -> str:
    """The commands a run sent, busiest first: calls and server ms per command (PING
    includes the pinger's, one a millisecond)."""
    rows = []
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if name in ("info", "config|set", "config|resetstat", "slowlog|reset") or calls == c0:
            continue
        rows.append((usec - u0, calls - c0, name))
    rows.sort(reverse=True)
    total = sum(u for u, _, name in rows if name != "ping")  # script-run ones count twice
    return "\n".join([f"{'':17s}{'command':22s}{'calls':>9s}{'server ms':>11s}"]
                     + [f"{'':17s}{name:22s}{calls:9,d}{usec / 1000:11.1f}"
                        for usec, calls, name in rows]
                     + [f"{'':17s}{'total (without PING)':22s}{'':9s}{total / 1000:11.1f}"])


def check(r: redis.Redis, stock: int, product: int) -> str:
    """'' when the keyspace is right, else what is wrong."""
    banners = sum(1 for _ in r.scan_iter(match="shop:banner:*", count=10_000))
    stocks = sum(1 for _ in r.scan_iter(match="shop:stock:*", count=10_000))
    pipe = r.pipeline(transaction=False)
    sample = [b"shop:product:%d" % i for i in range(0, product, max(1, product // 1000))]
    for key in sample:
        pipe.pttl(key)
    too_long = sum(1 for pttl in pipe.execute() if pttl > H or pttl == -1)
    wrong = []
    if banners:
        wrong.append(f"{banners} banner keys left")
    if stocks != stock:
        wrong.append(f"{stocks} stock keys, not {stock}")
    if too_long:
        wrong.append(f"{too_long} of {len(sample)} product keys above 1h")
    return "; ".join(wrong)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 1,000,000 keys")
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each, alternating; the best of each is compared")
    parser.add_argument("--commandstats", action="store_true",
                        help="print each run's INFO commandstats delta (calls, server ms)")
    parser.add_argument("--hand-loop", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand_loop:
        print(*hand_loop(args.hand_loop))
        return 0
    if shutil.which("redis-cli") is None:
        print("redis-cli is needed to load keys fast (apt-get install redis-tools)")
        return 2
    n_product, n_banner, n_stock = (round(k * args.scale) for k in (300_000, 300_000, 400_000))
    WORK.mkdir(parents=True, exist_ok=True)
    old, new = WORK / "old.yaml", WORK / "new.yaml"
    old.write_text(OLD)
    new.write_text(NEW)
    changed = resp_file(WORK / "product.resp", [b"shop:product:%d" % i for i in range(n_product)],
                        ttl_ms=5 * H)
    doomed = resp_file(WORK / "banner.resp", [b"shop:banner:%d" % i for i in range(n_banner)])
    stock = resp_file(WORK / "stock.resp", [b"shop:stock:%d" % i for i in range(n_stock)],
                      ttl_ms=2 * H)
    server = RedisServer(WORK / "redis").start()
    try:
        r = server.client()
        pipe_load(server.port, stock)
        _s, idle, _r = with_pings(server.port, lambda: time.sleep(3))
        print(f"{'idle':15s} PING p50 {idle['p50_ms']:.2f} ms  p99 {idle['p99_ms']:.2f} ms  "
              f"max {idle['max_ms']:.2f} ms ({idle['n']:,} pings): the machine's noise floor")
        results: dict[str, tuple[float, dict[str, float]]] = {}
        names = [f"{who}{'' if i == 0 else f'#{i + 1}'}" for i in range(max(1, args.rounds))
                 for who in ("cachectl", "hand-written")]
        for name in names:
            r.delete("shop:cachectl:audit")
            pipe_load(server.port, changed)
            pipe_load(server.port, doomed)
            assert r.dbsize() == n_product + n_banner + n_stock, r.dbsize()
            note = ""
            cpu_before = server_cpu_s(r)
            r.config_resetstat()
            stats_before = commandstats(r)
            start_slowlog(r)
            if name.startswith("cachectl"):
                secs, pings, res = with_pings(server.port,
                                              lambda: cachectl_apply(server.port, old, new))
                doc: dict[str, object] = res  # type: ignore[assignment]
                clamped_doc, removed_doc = doc["clamped"], doc["removed"]
                clamped = int(clamped_doc["clamped"])  # type: ignore[index]
                removed = int(removed_doc["removed"])  # type: ignore[index]
                # both steps run in one SCAN walk: each step's seconds are the walk's
                inner = max(float(clamped_doc["seconds"]), float(removed_doc["seconds"]))  # type: ignore[index]
                note = f"  (of which the clamp-and-remove walk {inner:.2f} s)"
            else:
                secs, pings, res = with_pings(server.port, lambda: hand_loop_process(server.port))
                clamped, removed = res  # type: ignore[misc]
            cpu = server_cpu_s(r) - cpu_before
            stats_after = commandstats(r)
            slow, slow_max_ms = slow_commands(r)
            wrong = check(r, n_stock, n_product)
            results[name] = (secs, pings)
            print(f"{name:15s} {secs:6.2f} s  clamped {clamped:,} removed {removed:,}  "
                  f"server CPU {cpu:5.2f} s  commands > 1 ms: {slow} (max {slow_max_ms:.1f} ms)  "
                  f"PING p50 {pings['p50_ms']:.2f} ms  p99 {pings['p99_ms']:.2f} ms  "
                  f"max {pings['max_ms']:.2f} ms  ({pings['n']:,} pings){note}"
                  f"{'  WRONG: ' + wrong if wrong else ''}")
            if args.commandstats:
                print(commandstats_delta(stats_before, stats_after))
        ours = [v for k, v in results.items() if k.startswith("cachectl")]
        theirs = [v for k, v in results.items() if k.startswith("hand-written")]
        best_c, best_h = min(s for s, _ in ours), min(s for s, _ in theirs)
        p99_c = max(p["p99_ms"] for _, p in ours)
        p99_h = max(p["p99_ms"] for _, p in theirs)
        print(f"\nbest of {len(ours)}: cachectl apply {best_c:.2f} s, hand-written {best_h:.2f} s, "
              f"ratio cachectl/hand = {best_c / best_h:.2f} "
              f"(target <= 1.00: {'met' if best_c <= best_h else 'missed'})")
        print(f"PING p99 during apply (worst run): {p99_c:.2f} ms (target < 5 ms: "
              f"{'met' if p99_c < 5 else 'missed'}); during the hand-written loop: {p99_h:.2f} ms")
        print(f"machine: {os.cpu_count()} cores, load average "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
