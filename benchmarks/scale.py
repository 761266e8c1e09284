# ruff: noqa: E402  (benchmarks/ and the repository are put on sys.path before the imports)
"""Benchmark: each command's cost curve from 1M to 10M keys, against the peers of the other benchmarks.

For each size (default 1,000,000 then 10,000,000 keys) a throwaway redis-server (free port,
never 6379) is loaded through `redis-cli --pipe` fed straight from a generator (no file),
with bench_inspect's namespace layout (product, price, stock, session, cart, reviews and 2 %
unmatched keys) and small values so 10M keys fit in ~2 GB. Then, each as its own process
(start-up included), with wall time and the process's peak RSS (wait4):

  inspect exact            cachectl inspect --json
  inspect --sample 20000   cachectl inspect --json --sample 20000
  audit                    cachectl audit --json
  stats                    cachectl stats --json --interval 1s (its sampled key scan)
  flush a tenth            cachectl flush -n cart --yes --json (cart holds 10 % of the keys)
  warm a tenth             cachectl warm -n cart --json (the flushed keys, from JSONL)
  peer: scan loop          SCAN + pipelined MEMORY USAGE grouped by the policy (bench_inspect)
  peer: redis_exporter     one -check-key-groups scrape, when the binary is installed
  peer: flush loop         SCAN MATCH shop:cart:* + UNLINK per 1000 keys (as benchmarks/flush.py)
  peer: redis-cli --pipe   the same cart rows pre-encoded as SET … PX

and prints, per command, time and peak RSS at both sizes and the growth factor against the
targets: sampled commands (inspect --sample, stats) grow at most 1.3x; exact inspect, audit
and flush at most 10.5x and no slower than their peer at the larger size; peak RSS within
20 % between sizes. The JSON counts are checked against what was loaded. A size whose
keys would not fit in the memory available is skipped, and the output says so.

    .venv/bin/python benchmarks/scale.py [--sizes 1000000,10000000]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent)]  # bench_inspect, and tests.support (not installed)

import argparse
import json
import os
import subprocess
import time
from collections.abc import Iterator

import bench_inspect
from bench_inspect import LAYOUT, PREFIX

from tests.support.redis_server import RedisServer

WORK = ROOT / ".work" / "scale"
BIN = ROOT.parent / ".venv" / "bin"
CACHECTL = str(BIN / "cachectl") if (BIN / "cachectl").exists() else "cachectl"
BYTES_PER_KEY = 200  # what one loaded key costs the server, measured at 1M keys (with margin)
SAMPLED = ("inspect --sample 20000", "stats")
LINEAR = {"inspect exact": "peer: scan loop", "audit": "peer: scan loop", "flush a tenth": "peer: flush loop"}
FLUSH_LOOP = """
import re, sys, redis
r = redis.Redis(port=int(sys.argv[1]))
exact, batch, removed = re.compile(rb"shop:cart:[^:]+"), [], 0
for key in r.scan_iter(match="shop:cart:*", count=1000):
    if exact.fullmatch(key):
        batch.append(key)
        if len(batch) >= 1000:
            removed += r.unlink(*batch); batch = []
if batch:
    removed += r.unlink(*batch)
print(removed)
"""
SCAN_LOOP = f"""
import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT.parent)!r}]
import bench_inspect
seconds, totals = bench_inspect.python_loop(sys.argv[1])
print(sum(totals.values()))
"""


def policy_yaml(cart_rows: Path) -> str:
    """bench_inspect's policy, with cart warmed from ``cart_rows``."""
    lines = bench_inspect.policy_yaml().splitlines()
    return "\n".join(
        line[:-1] + f", warm: {{source: {{type: jsonl, path: {cart_rows}}}}}}}"
        if line.strip().startswith("cart:") else line for line in lines) + "\n"


def counts(total: int) -> dict[str, int]:
    """Keys per namespace (bench_inspect's shares; the rest unmatched)."""
    out = {name: int(total * share) for name, (share, *_rest) in LAYOUT.items()}
    out["(unmatched)"] = total - sum(out.values())
    return out


def commands(total: int) -> Iterator[bytes]:
    """SET … PX for every key, as RESP, in chunks; values of 16-80 bytes."""
    for name, n in counts(total).items():
        if name == "(unmatched)":
            head, ttl_s = b"legacy:", 0
        else:
            _, template, _, ttl_s = LAYOUT[name]
            head = f"{PREFIX}:{template.split('{')[0]}".encode()
        chunk = []
        for i in range(n):
            key = head + b"%d" % i
            value = b"v" * (16 + i % 65)
            if ttl_s:
                px = b"%d" % (ttl_s * 1000 - i % 1000)
                chunk.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n"
                             % (len(key), key, len(value), value, len(px), px))
            else:
                chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
                             % (len(key), key, len(value), value))
            if len(chunk) == 20_000:
                yield b"".join(chunk)
                chunk = []
        yield b"".join(chunk)


def load(port: int, total: int) -> float:
    """Stream every key into redis-cli --pipe; return the seconds it took."""
    start = time.perf_counter()
    proc = subprocess.Popen(["redis-cli", "-p", str(port), "--pipe"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    assert proc.stdin is not None
    for chunk in commands(total):
        proc.stdin.write(chunk)
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("redis-cli --pipe failed while loading")
    return time.perf_counter() - start


def cart_inputs(n: int) -> tuple[Path, Path]:
    """The cart rows as JSONL (for warm) and as pre-encoded RESP (for redis-cli --pipe)."""
    WORK.mkdir(parents=True, exist_ok=True)
    jsonl, resp = WORK / f"cart-{n}.jsonl", WORK / f"cart-{n}.resp"
    if not (jsonl.exists() and resp.exists()):
        ttl = b"%d" % (LAYOUT["cart"][3] * 1000)
        with jsonl.open("wb") as jf, resp.open("wb") as rf:
            for i in range(n):
                row = b'{"user_id":%d,"items":%d,"total_cents":%d}' % (i, i % 7, i % 9999)
                jf.write(row + b"\n")
                key = b"shop:cart:%d" % i
                rf.write(b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n"
                         % (len(key), key, len(row), row, len(ttl), ttl))
    return jsonl, resp


def measured(cmd: list[str], stdin: Path | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; return (seconds, peak RSS MiB of that process, stdout). Exit 1 (findings) is fine."""
    out_path = WORK / "stdout.tmp"
    start = time.perf_counter()
    with out_path.open("wb") as out, (stdin.open("rb") if stdin else open(os.devnull, "rb")) as inp:
        proc = subprocess.Popen(cmd, stdin=inp, stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    text = out_path.read_text()
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:3])} exited {code}: {err.decode(errors='replace')[-800:]}")
    return seconds, usage.ru_maxrss / 1024, text


def run_size(total: int, exporter: str | None) -> dict[str, tuple[float, float]]:
    """Load ``total`` keys into a fresh server and time every command; (seconds, peak RSS MiB) each."""
    expect = counts(total)
    jsonl, resp = cart_inputs(expect["cart"])
    policy = WORK / "policy.yaml"
    policy.write_text(policy_yaml(jsonl))
    results: dict[str, tuple[float, float]] = {}
    server = RedisServer(WORK / f"server-{total}").start()
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        print(f"\n{total:,} keys: loaded in {load(server.port, total):.1f} s "
              f"(redis-cli --pipe, streamed)", flush=True)
        base = ["-p", str(policy), "--url", url, "--json"]

        def run(name: str, cmd: list[str], stdin: Path | None = None) -> str:
            seconds, rss, out = measured(cmd, stdin)
            results[name] = (seconds, rss)
            print(f"  {name:26} {seconds:8.2f} s  {rss:7.0f} MiB", flush=True)
            return out

        exact = json.loads(run("inspect exact", [CACHECTL, "inspect", *base]))
        run("inspect --sample 20000", [CACHECTL, "inspect", *base, "--sample", "20000"])
        run("audit", [CACHECTL, "audit", *base])
        run("stats", [CACHECTL, "stats", *base, "--interval", "1s"])
        flushed = json.loads(run("flush a tenth", [CACHECTL, "flush", *base, "-n", "cart", "--yes"]))
        print(f"  {'':26} flush pacing: {flushed.get('pacing')}")  # pauses when the server's latency rises
        warmed = json.loads(run("warm a tenth", [CACHECTL, "warm", *base, "-n", "cart"]))
        removed = int(run("peer: flush loop", [sys.executable, "-c", FLUSH_LOOP, str(server.port)]))
        run("peer: redis-cli --pipe", ["redis-cli", "-p", str(server.port), "--pipe"], stdin=resp)
        scrape = bench_inspect.exporter_scrape(server.port, exporter)
        if scrape is not None:
            results["peer: redis_exporter"] = (scrape[0], 0.0)
            print(f"  {'peer: redis_exporter':26} {scrape[0]:8.2f} s  (scrape; RSS not measured)")
        run("peer: scan loop", [sys.executable, "-c", SCAN_LOOP, url])  # the slowest: last
        found = {n["namespace"]: n["keys"] for n in exact.get("namespaces", [])}
        checks = {
            "inspect keys per namespace": all(found.get(n) == k for n, k in expect.items()
                                              if n != "(unmatched)"),
            "flush removed the cart keys": flushed.get("removed", flushed.get("matched")) == expect["cart"],
            "warm wrote them back": warmed.get("written") == expect["cart"],
            "peer loop removed them again": removed == expect["cart"],
        }
        bad = [name for name, ok in checks.items() if not ok]
        print(f"  counts: {'all as loaded' if not bad else 'WRONG: ' + ', '.join(bad)}"
              + ("" if not bad else f" (inspect {found}, flush {flushed.get('removed')}, "
                 f"warm {warmed.get('written')}, expected {expect})"))
    finally:
        server.stop()
    return results


def fits(total: int) -> tuple[bool, str]:
    """Whether ``total`` keys fit in the memory available now, with the server's overhead."""
    with open("/proc/meminfo") as fh:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
    need, have = total * BYTES_PER_KEY * 2, info.get("MemAvailable", 0)  # 2x: fork-free, but margin
    return need <= have, f"needs ~{need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB available"


def report(sizes: list[int], results: dict[int, dict[str, tuple[float, float]]]) -> None:
    small, large = sizes[0], sizes[-1]
    a, b = results[small], results[large]
    print(f"\ngrowth from {small:,} to {large:,} keys ({large / small:.0f}x the keys; wall time "
          f"on a loaded shared machine, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'':26} {'time small':>10} {'time large':>10} {'growth':>7} {'RSS small':>9} "
          f"{'RSS large':>9} {'RSS':>6}  verdict")
    for name in a:
        if name not in b:
            continue
        (t0, r0), (t1, r1) = a[name], b[name]
        growth, rss = t1 / t0, (r1 / r0 if r0 else 0.0)
        verdict = ""
        if name in SAMPLED:
            verdict = "OK" if growth <= 1.3 else "OVER 1.3x"
        elif name in LINEAR:
            peer = b.get(LINEAR[name])
            slower = peer is not None and t1 > peer[0]
            verdict = ("OK" if growth <= 10.5 else "OVER 10.5x") + (
                f", {t1 / peer[0]:.2f}x {LINEAR[name]}" if peer else "")
            verdict += " (slower than peer)" if slower else ""
        if name.startswith(("inspect", "audit", "stats", "flush", "warm")) and r0:
            verdict += ("; RSS OK" if rss <= 1.2 else "; RSS OVER 1.2x")
        print(f"{name:26} {t0:9.2f}s {t1:9.2f}s {growth:6.2f}x {r0:7.0f}Mi {r1:7.0f}Mi "
              f"{rss:5.2f}x  {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000",
                        help="comma-separated key counts, smallest first")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install redis_exporter when it is missing")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    WORK.mkdir(parents=True, exist_ok=True)
    exporter = bench_inspect.exporter_binary(install=not args.no_install)
    if exporter is None:
        print("peer: redis_exporter is not installed; its scrape is skipped")
    results: dict[int, dict[str, tuple[float, float]]] = {}
    for total in sizes:
        ok, why = fits(total)
        if not ok:
            print(f"\n{total:,} keys: skipped, {why}")
            continue
        results[total] = run_size(total, exporter)
    done = [s for s in sizes if s in results]
    if len(done) >= 2:
        report(done, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
