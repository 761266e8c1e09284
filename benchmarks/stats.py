"""Benchmark `cachectl stats` on 1,000,000 keys against redis-cli as the peer.

Starts a throwaway redis-server (never 6379), loads 1,000,000 keys of the shop policy
with `redis-cli --pipe`, then times, as subprocesses, each run REPEAT times (median):

  cachectl stats --json --no-scan --interval 1s   target: < 1 s + the interval
  cachectl stats --json --interval 1s             per-namespace figures from sampling, < 3 s + interval
  peer: `redis-cli info` twice, 1 s apart         what `redis-cli --stat` does per line
  peer: `redis-cli --scan --pattern 'shop:product:*' | count`   a full scan, for one namespace

and prints the figures, the sampled estimates against the true counts, and the ratios.

    .venv/bin/python benchmarks/stats.py [--keys 1000000] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support, which is not installed

import argparse
import json
import shutil
import statistics
import subprocess
import time

import redis

from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "stats"
CACHECTL = str(ROOT / ".venv" / "bin" / "cachectl")
POLICY = ROOT / "policies" / "ecommerce.yaml"
# share of the keyspace per namespace (the rest of the policy's namespaces get none)
MIX = {"product": 0.40, "price": 0.30, "stock": 0.20, "session": 0.10}
TEMPLATES = {"product": "shop:product:{}", "price": "shop:price:sku-{}",
             "stock": "shop:stock:sku-{}", "session": "shop:session:tok{}"}


def resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


def load(port: int, total: int) -> dict[str, int]:
    """Write ``total`` keys with redis-cli --pipe; return the true count per namespace."""
    path = WORK / "load.resp"
    counts: dict[str, int] = {}
    value = b'{"name":"item","price_cents":1999,"tags":["a","b"]}'
    with path.open("wb") as fh:
        done = 0
        for ns, share in MIX.items():
            n = int(total * share) if ns != list(MIX)[-1] else total - done
            counts[ns] = n
            template = TEMPLATES[ns]
            chunk = []
            for i in range(n):
                chunk.append(resp(b"SET", template.format(i).encode(), value, b"PX", b"3600000"))
                if len(chunk) == 10_000:
                    fh.write(b"".join(chunk))
                    chunk = []
            fh.write(b"".join(chunk))
            done += n
    with path.open("rb") as fh:
        subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=fh, check=True,
                       stdout=subprocess.DEVNULL)
    path.unlink()
    return counts


def timed(cmd: list[str], shell: bool = False) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(" ".join(cmd) if shell else cmd, capture_output=True, text=True,
                          shell=shell, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd} exited {proc.returncode}: {proc.stderr}")
    return elapsed, proc.stdout


def peer_info_twice(port: int, interval: float) -> None:
    subprocess.run(["redis-cli", "-p", str(port), "info"], capture_output=True, check=True)
    time.sleep(interval)
    subprocess.run(["redis-cli", "-p", str(port), "info"], capture_output=True, check=True)


# what `cachectl stats` imports before it talks to Redis: the CLI, the policy model, redis-py
IMPORTS = ("from cachectl.cli.app import build_command; build_command(); "
           "import cachectl.policy, cachectl.stats, cachectl.connection")


def in_process(url: str, interval: float, scan: bool) -> float:
    """The command's own work, without interpreter start-up and imports."""
    from cachectl.policy import load_policy
    from cachectl.stats import StatsOptions, collect_stats

    policy = load_policy(POLICY)
    client = redis.Redis.from_url(url)
    start = time.perf_counter()
    collect_stats(client, policy, StatsOptions(interval_s=interval, scan=scan))
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        print("redis-server and redis-cli are needed", file=sys.stderr)
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    server = RedisServer(WORK, "--maxmemory", "2gb", "--maxmemory-policy", "allkeys-lru").start()
    port = server.port
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        start = time.perf_counter()
        truth = load(port, args.keys)
        print(f"loaded {client.dbsize():,} keys in {time.perf_counter() - start:.1f}s "
              f"(redis-cli --pipe); redis {client.info('server')['redis_version']}")
        interval = 1.0
        base = [CACHECTL, "stats", "-p", str(POLICY), "--url", url, "--json", "--interval", "1s"]
        no_scan, with_scan, scan_ms, info_peer, full_scan = [], [], [], [], []
        core_no_scan, core_scan, startup = [], [], []
        report: dict[str, object] = {}
        for _ in range(args.repeat):
            t, _out = timed([*base, "--no-scan"])
            no_scan.append(t)
            startup.append(timed([sys.executable, "-c", IMPORTS])[0])
            core_no_scan.append(in_process(url, interval, scan=False))
            core_scan.append(in_process(url, interval, scan=True))
            t, out = timed(base)
            with_scan.append(t)
            report = json.loads(out)
            scan = report["scan"]
            assert isinstance(scan, dict)
            scan_ms.append(float(scan["duration_ms"]))
            start = time.perf_counter()
            peer_info_twice(port, interval)
            info_peer.append(time.perf_counter() - start)
            t, out = timed(["redis-cli", "-p", str(port), "--scan",
                            "--pattern", "'shop:product:*'", "|", "wc", "-l"], shell=True)
            full_scan.append(t)
            # SCAN may repeat a key while the table rehashes, never miss one
            assert int(out.strip()) >= truth["product"], out
        med = statistics.median
        load1 = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
        print(f"\nmedian of {args.repeat} runs, interval {interval:g}s, {args.keys:,} keys, "
              f"load average {load1}")
        print(f"  cachectl stats --json --no-scan      {med(no_scan):6.2f} s   "
              f"(target < {1 + interval:.1f} s: {'met' if med(no_scan) < 1 + interval else 'MISSED'})")
        print(f"  cachectl stats --json (sampled scan) {med(with_scan):6.2f} s   "
              f"(target < {3 + interval:.1f} s: {'met' if med(with_scan) < 3 + interval else 'MISSED'}); "
              f"scan itself {med(scan_ms):.0f} ms")
        print(f"    of which interpreter start-up + imports (typer, pydantic, redis) "
              f"{med(startup):.2f} s")
        print(f"  in-process collect_stats, no scan    {med(core_no_scan):6.2f} s")
        print(f"  in-process collect_stats, with scan  {med(core_scan):6.2f} s")
        print(f"  peer: redis-cli info, {interval:g}s, info  {med(info_peer):6.2f} s")
        print(f"  peer: redis-cli --scan one namespace {med(full_scan):6.2f} s   (a full scan)")
        print("\nratios")
        print(f"  stats --no-scan / redis-cli info twice      {med(no_scan) / med(info_peer):5.2f}x")
        print(f"  in-process no scan / redis-cli info twice   {med(core_no_scan) / med(info_peer):5.2f}x")
        print(f"  stats with scan / redis-cli info twice      {med(with_scan) / med(info_peer):5.2f}x")
        print(f"  sampled scan / full scan of one namespace   "
              f"{med(scan_ms) / 1000 / med(full_scan):5.3f}x")
        print("\nsampled estimates (last run) against the truth")
        namespaces = report["namespaces"]
        assert isinstance(namespaces, list)
        for ns in namespaces:
            keys = ns.get("keys") or {}
            true = truth.get(ns["namespace"], 0)
            est = keys.get("keys", 0)
            err = abs(est - true) / true * 100 if true else 0.0
            if true or est:
                mem = keys.get("memory_bytes") or 0
                margin = keys.get("keys_margin", 0)
                print(f"  {ns['namespace']:<10} true {true:>9,}  estimate {est:>9,} ±{margin:,}"
                      f"  error {err:4.1f}%  memory ~{mem / 2**20:7.1f} MiB")
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
