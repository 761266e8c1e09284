# ruff: noqa: E402  (tests.support is put on sys.path before the imports)
"""Benchmark: `cachectl flush --namespace product --yes` against a hand-written SCAN + UNLINK loop.

Both run as their own Python process (start-up included); cachectl's JSON also gives
the time of the flush itself, after start-up, policy load and counting.

A throwaway redis-server (free port, never 6379) holds 1,000,000 keys of namespace
``product`` (``shop:product:{id}``) among 1,000,000 others, half of them the nested
``shop:product:reviews:{id}`` that a naive ``SCAN MATCH shop:product:*`` would also
hit (the hand-written loop filters them with a regex, as a careful operator would).
The keys are loaded with ``redis-cli --pipe`` and reloaded between runs. While each
flush runs, a second process sends PING every millisecond and records its latency.

Prints both times, the ratio, PING p50/p99/max during each, the server's own CPU time
and the commands it logged as slower than 1 ms (SLOWLOG), and checks that exactly the
namespace's keys went. Working files live in benchmarks/.work/.

    .venv/bin/python benchmarks/flush.py [--keys 1000000] [--others 1000000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support, which is not installed

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import time
from multiprocessing.synchronize import Event

import redis

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work" / "flush"
REPO = ROOT.parent

from tests.support.redis_server import RedisServer

POLICY = """\
version: 1
redis: {key_prefix: shop}
defaults: {ttl: 10m}
namespaces:
  product:         {key: "product:{id}", ttl: 1h, stale: 10m}
  product_reviews: {key: "product:reviews:{id}", ttl: 30m}
  cart:            {key: "cart:{user_id}", ttl: 30m}
"""


def resp_file(path: Path, keys: list[bytes], ttl_ms: int = 3_600_000) -> Path:
    """Write SET key v PX ttl_ms commands in RESP for redis-cli --pipe."""
    px = b"%d" % ttl_ms
    with path.open("wb") as fh:
        for k in keys:
            fh.write(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n$2\r\nPX\r\n$%d\r\n%s\r\n"
                     % (len(k), k, len(px), px))
    return path


def pipe_load(port: int, path: Path) -> None:
    with path.open("rb") as fh:
        out = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=fh,
                             capture_output=True, check=True)
    if b"errors: 0" not in out.stdout:
        raise RuntimeError(out.stdout.decode())


def pinger(port: int, start: Event, stop: Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """PING every millisecond between start and stop; put the round trips (ms) on ``out``."""
    r = redis.Redis(port=port)
    r.ping()
    samples: list[float] = []
    start.wait()
    next_at = time.perf_counter()
    while not stop.is_set():
        t0 = time.perf_counter()
        r.ping()
        samples.append((time.perf_counter() - t0) * 1000)
        next_at += 0.001
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.perf_counter()
    out.put(samples)


def with_pings(port: int, work: object) -> tuple[float, dict[str, float], object]:
    """Run ``work()`` while another process PINGs every ms; return seconds, PING stats, result."""
    start, stop = mp.Event(), mp.Event()
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    proc = mp.Process(target=pinger, args=(port, start, stop, out))
    proc.start()
    time.sleep(0.3)
    start.set()
    time.sleep(0.05)
    t0 = time.perf_counter()
    result = work()  # type: ignore[operator]
    seconds = time.perf_counter() - t0
    stop.set()
    samples = sorted(out.get(timeout=30))
    proc.join(10)
    return seconds, {
        "n": len(samples),
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "max_ms": samples[-1],
    }, result


def cachectl_flush(port: int, policy: Path) -> dict[str, object]:
    cli = REPO / ".venv" / "bin" / "cachectl"
    start = [str(cli)] if cli.exists() else [
        sys.executable, "-c", "from cachectl.cli import main; main()"]
    cmd = [*start, "flush", "-p", str(policy), "--url",
           f"redis://127.0.0.1:{port}/0", "--namespace", "product", "--yes", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def hand_loop(port: int) -> int:
    """What an operator would write: SCAN MATCH + exact regex + UNLINK per 1000 keys."""
    r = redis.Redis(port=port)
    exact = re.compile(rb"shop:product:[^:]+")
    batch: list[bytes] = []
    removed = 0
    for key in r.scan_iter(match="shop:product:*", count=1000):
        if exact.fullmatch(key):
            batch.append(key)
            if len(batch) >= 1000:
                removed += r.unlink(*batch)
                batch = []
    if batch:
        removed += r.unlink(*batch)
    return removed


def start_slowlog(r: redis.Redis) -> None:
    """Log every command over 1 ms from now on (the server's own view, whatever the host's load)."""
    r.config_set("slowlog-log-slower-than", 1000)  # µs
    r.config_set("slowlog-max-len", 10_000)
    r.slowlog_reset()


def slow_commands(r: redis.Redis) -> tuple[int, float]:
    """How many commands took over 1 ms on the server since ``start_slowlog``, and the longest (ms)."""
    slow = [e for e in r.slowlog_get(10_000)
            if e["command"].split(b" ")[0].upper() not in (b"CONFIG", b"SLOWLOG")]
    return len(slow), max((e["duration"] for e in slow), default=0) / 1000


def server_cpu_s(r: redis.Redis) -> float:
    """CPU seconds the redis-server process has used (INFO cpu), all threads."""
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def hand_loop_process(port: int) -> int:
    """The hand-written loop in its own Python process, like the CLI (fair start-up)."""
    out = subprocess.run([sys.executable, __file__, "--hand-loop", str(port)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each, alternating; the best of each is compared")
    parser.add_argument("--hand-loop", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand_loop:
        print(hand_loop(args.hand_loop))
        return 0
    if shutil.which("redis-cli") is None:
        print("redis-cli is needed to load keys fast (apt-get install redis-tools)")
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    policy = WORK / "cachectl.yaml"
    policy.write_text(POLICY)
    target = resp_file(WORK / "target.resp", [b"shop:product:%d" % i for i in range(args.keys)])
    half = args.others // 2
    others = resp_file(WORK / "others.resp",
                       [b"shop:product:reviews:%d" % i for i in range(half)]
                       + [b"shop:cart:%d" % i for i in range(args.others - half)])
    server = RedisServer(WORK / "redis").start()
    try:
        r = server.client()
        t0 = time.perf_counter()
        pipe_load(server.port, others)
        print(f"loaded {args.others:,} other keys in {time.perf_counter() - t0:.1f} s")
        results: dict[str, tuple[float, dict[str, float]]] = {}
        _s, idle, _r = with_pings(server.port, lambda: time.sleep(3))
        print(f"{'idle (no flush)':15s} {'':28s}PING p50 {idle['p50_ms']:.2f} ms  p99 "
              f"{idle['p99_ms']:.2f} ms  max {idle['max_ms']:.2f} ms  ({idle['n']:,} pings): "
              "the machine's noise floor")
        inner_times: list[float] = []
        server_cpu: dict[str, float] = {}
        names = [f"{who}{'' if i == 0 else f'#{i + 1}'}" for i in range(max(1, args.rounds))
                 for who in ("cachectl", "hand-written")]
        for name in names:
            r.delete("shop:cachectl:audit")
            pipe_load(server.port, target)
            assert r.dbsize() == args.keys + args.others, r.dbsize()
            cpu_before = server_cpu_s(r)
            start_slowlog(r)
            if name.startswith("cachectl"):
                secs, pings, res = with_pings(server.port, lambda: cachectl_flush(server.port, policy))
                removed = int(res["removed"])  # type: ignore[index]
                inner = float(res["seconds"])  # type: ignore[index]
                inner_times.append(inner)
                pacing = res["pacing"]  # type: ignore[index]
                note = (f"  (of which the flush itself {inner:.2f} s; {pacing['batches']:,} batches, "
                        f"slowed down {pacing['backoffs']}x)")
            else:
                secs, pings, res = with_pings(server.port, lambda: hand_loop_process(server.port))
                removed, note = int(res), ""  # type: ignore[call-overload]
            server_cpu[name] = server_cpu_s(r) - cpu_before
            slow, slow_max_ms = slow_commands(r)
            left = r.dbsize() - (1 if r.exists("shop:cachectl:audit") else 0)
            ok = removed == args.keys and left == args.others
            results[name] = (secs, pings)
            print(f"{name:15s} {secs:6.2f} s  {removed / secs:10,.0f} keys/s  "
                  f"server CPU {server_cpu[name]:5.2f} s  "
                  f"commands > 1 ms: {slow} (max {slow_max_ms:.1f} ms)  "
                  f"PING p50 {pings['p50_ms']:.2f} ms  p99 {pings['p99_ms']:.2f} ms  "
                  f"max {pings['max_ms']:.2f} ms  ({pings['n']:,} pings){note}"
                  f"{'' if ok else f'  WRONG KEYS: removed {removed}, left {left}'}")
        ours = [v for k, v in results.items() if k.startswith("cachectl")]
        theirs = [v for k, v in results.items() if k.startswith("hand-written")]
        best_c = min(secs for secs, _ in ours)
        best_h = min(secs for secs, _ in theirs)
        p99 = max(pings["p99_ms"] for _, pings in ours)
        print(f"\nbest of {len(ours)}: cachectl {best_c:.2f} s, hand-written {best_h:.2f} s, "
              f"ratio cachectl/hand = {best_c / best_h:.2f} "
              f"(target <= 1.00: {'met' if best_c <= best_h else 'missed'})")
        print(f"cachectl's flush itself (after start-up, policy, count): best {min(inner_times):.2f} s"
              f", ratio to the whole hand-written process = {min(inner_times) / best_h:.2f}")
        print("server CPU per flush (independent of the host's load): cachectl "
              f"{min(v for k, v in server_cpu.items() if k.startswith('cachectl')):.2f} s, "
              f"hand-written {min(v for k, v in server_cpu.items() if k.startswith('hand')):.2f} s")
        print(f"PING p99 during cachectl flush (worst run): {p99:.2f} ms "
              f"(target < 5 ms: {'met' if p99 < 5 else 'missed'})")
        print(f"machine: {os.cpu_count()} cores, load average "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
