"""Fidelity of `cachectl bench` against redis-benchmark, on one throwaway server.

    .venv/bin/python benchmarks/bench_fidelity.py [--rounds 3] [--requests 100000]

1. Latency: `redis-benchmark -t get -c 1` and `cachectl bench --mode hot --clients 1`
   read the same 10 keys (``fid:item:000000000000`` … ``…09``, which is what
   redis-benchmark's ``-r 10 … __rand_int__`` produces); both p50s and their ratio
   (target: cachectl within 1.5x of redis-benchmark).
2. Throughput: `cachectl bench --clients 8 --pipeline 16` vs `redis-benchmark -c 8 -P 16`
   (target >= 0.25x), and a plain redis-py pipeline loop (one client, 16 GETs per
   round trip) for reference.

Rounds alternate the tools so background noise hits both; the median is reported.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support, which is not installed

import argparse
import csv
import io
import json
import shutil
import statistics
import subprocess
import tempfile
import time

import redis

from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
CACHECTL = [sys.executable, "-m", "cachectl.cli"] if not (ROOT / ".venv/bin/cachectl").exists() \
    else [str(ROOT / ".venv/bin/cachectl")]
KEYS = 10
VALUE = b"v" * 100
POLICY = """\
version: 1
redis: {key_prefix: fid}
namespaces:
  item: {key: "item:{id}", ttl: 1h}
"""


def redis_benchmark(port: int, clients: int, pipeline: int, requests: int) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(clients), "-P", str(pipeline),
         "-n", str(requests), "-r", str(KEYS), "--csv", "GET", "fid:item:__rand_int__"],
        capture_output=True, text=True, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    row = rows[-1]
    return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
            "p99_ms": float(row["p99_latency_ms"])}


def cachectl_bench(port: int, policy: Path, clients: int, pipeline: int,
                   limit: list[str]) -> dict[str, float]:
    proc = subprocess.run(
        [*CACHECTL, "bench", "-p", str(policy), "--url", f"redis://127.0.0.1:{port}/0",
         "--existing", "--mode", "hot", "--clients", str(clients), "--pipeline", str(pipeline),
         "--warmup", "1s", *limit, "--json"],
        capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"cachectl bench failed ({proc.returncode}): {proc.stderr}")
    run = json.loads(proc.stdout)["runs"][0]
    assert run["working_set"] == KEYS, run
    return {"rps": run["throughput_rps"], "p50_ms": run["latency"]["p50_ms"],
            "p99_ms": run["latency"]["p99_ms"]}


def redis_py_pipeline(port: int, pipeline: int, seconds: float) -> float:
    client = redis.Redis(port=port)
    keys = [f"fid:item:{i:012d}" for i in range(KEYS)]
    done = 0
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        pipe = client.pipeline(transaction=False)
        for i in range(pipeline):
            pipe.get(keys[(done + i) % KEYS])
        pipe.execute()
        done += pipeline
    elapsed = time.perf_counter() - start
    client.close()
    return done / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000,
                        help="requests per latency measurement")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="duration of each throughput measurement")
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None or shutil.which("redis-server") is None:
        raise SystemExit("redis-server and redis-benchmark must be installed")
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        workdir = Path(tmp)
        policy = workdir / "cachectl.yaml"
        policy.write_text(POLICY)
        server = RedisServer(workdir).start()
        port = server.port
        try:
            client = server.client()
            for i in range(KEYS):
                client.set(f"fid:item:{i:012d}", VALUE, px=3_600_000)
            client.close()
            rb_lat, cc_lat, rb_tp, cc_tp, py_tp = [], [], [], [], []
            for r in range(args.rounds):
                rb_lat.append(redis_benchmark(port, 1, 1, args.requests))
                cc_lat.append(cachectl_bench(port, policy, 1, 1,
                                             ["--requests", str(args.requests)]))
                rb_tp.append(redis_benchmark(port, 8, 16, int(250_000 * args.seconds)))
                cc_tp.append(cachectl_bench(port, policy, 8, 16,
                                            ["--duration", f"{args.seconds:g}s"]))
                py_tp.append(redis_py_pipeline(port, 16, args.seconds))
                print(f"round {r + 1}: p50 redis-benchmark {rb_lat[-1]['p50_ms']:.3f} ms, "
                      f"cachectl {cc_lat[-1]['p50_ms']:.3f} ms; throughput redis-benchmark "
                      f"{rb_tp[-1]['rps']:,.0f}/s, cachectl {cc_tp[-1]['rps']:,.0f}/s, "
                      f"redis-py {py_tp[-1]:,.0f}/s", flush=True)
        finally:
            server.stop()

    def med(rows: list[dict[str, float]], field: str) -> float:
        return statistics.median(r[field] for r in rows)

    rb_p50, cc_p50 = med(rb_lat, "p50_ms"), med(cc_lat, "p50_ms")
    rb_p99, cc_p99 = med(rb_lat, "p99_ms"), med(cc_lat, "p99_ms")
    rb_rps, cc_rps, py_rps = med(rb_tp, "rps"), med(cc_tp, "rps"), statistics.median(py_tp)
    ratio = cc_p50 / rb_p50
    tp_ratio = cc_rps / rb_rps
    print()
    print(f"latency, 1 client, no pipeline ({args.requests:,} GETs, median of {args.rounds}):")
    print(f"  redis-benchmark  p50 {rb_p50:.3f} ms  p99 {rb_p99:.3f} ms")
    print(f"  cachectl bench   p50 {cc_p50:.3f} ms  p99 {cc_p99:.3f} ms")
    print(f"  p50 ratio cachectl/redis-benchmark: {ratio:.2f}x "
          f"(target <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'})")
    print(f"throughput, 8 clients x pipeline 16 ({args.seconds:g} s):")
    print(f"  redis-benchmark  {rb_rps:>12,.0f} GET/s")
    print(f"  cachectl bench   {cc_rps:>12,.0f} GET/s  {tp_ratio:.2f}x "
          f"(target >= 0.25x: {'met' if tp_ratio >= 0.25 else 'MISSED'})")
    print(f"  redis-py loop    {py_rps:>12,.0f} GET/s  {py_rps / rb_rps:.2f}x "
          "(1 client, pipeline 16, for reference)")
    return 0 if ratio <= 1.5 and tp_ratio >= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
