"""Benchmark: `cachectl inspect` against the other ways to size a keyspace by namespace.

Loads N keys (default 1,000,000) across several namespaces into a throwaway
redis-server (never 6379), then in one run times:

  1. cachectl inspect --json              exact: every key's MEMORY USAGE and PTTL
  2. redis-cli --memkeys                  per-type biggest keys (MEMORY USAGE per key)
  3. redis_exporter -check-key-groups     one /metrics scrape, same namespaces
  4. redis-py SCAN + pipelined MEMORY USAGE, grouped by the policy's matcher
  5. cachectl inspect --json --sample S   estimates, with each namespace's error vs 1.

and prints wall times, ratios, each namespace's sampled error and peak RSS.

    .venv/bin/python benchmarks/bench_inspect.py [--keys 1000000] [--sample 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / ".work" / "inspect"
CACHECTL = REPO / ".venv" / "bin" / "cachectl"
sys.path.insert(0, str(REPO))  # for tests.support, which is not installed

from tests.support.redis_server import RedisServer, free_port  # noqa: E402

# namespace -> (share of keys, key template, value size range, ttl seconds); TTLs are
# long enough that no key expires during the run (DBSIZE would still count it)
LAYOUT: dict[str, tuple[float, str, tuple[int, int], int]] = {
    "product": (0.30, "product:{id}", (200, 900), 3 * 3600),
    "price": (0.22, "price:{sku}", (8, 24), 2 * 3600),
    "stock": (0.15, "stock:{sku}", (1, 6), 2 * 3600),
    "session": (0.13, "session:{token}", (100, 400), 86400),
    "cart": (0.10, "cart:{user_id}", (50, 2000), 4 * 3600),
    "reviews": (0.08, "product:reviews:{id}", (300, 1500), 3 * 3600),
}
UNMATCHED_SHARE = 0.02  # legacy:<n>:blob keys no namespace claims
PREFIX = "shop"


def policy_yaml() -> str:
    lines = ["version: 1", f"redis: {{key_prefix: {PREFIX}}}", "namespaces:"]
    for name, (_, template, _, ttl) in LAYOUT.items():
        lines.append(f'  {name}: {{key: "{template}", ttl: {ttl}s, jitter: 10%}}')
    return "\n".join(lines) + "\n"


def resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


def load_keys(port: int, total: int, seed: int = 7) -> dict[str | None, int]:
    """Write the keyspace as RESP and feed it to `redis-cli --pipe`; return key counts."""
    rng = random.Random(seed)
    counts: dict[str | None, int] = {}
    path = WORK / "load.resp"
    with path.open("wb") as f:
        for name, (share, template, (lo, hi), ttl) in LAYOUT.items():
            n = int(total * share)
            counts[name] = n
            head = f"{PREFIX}:{template.split('{')[0]}".encode()
            buf = []
            for i in range(n):
                value = b"x" * rng.randint(lo, hi)
                px = int(ttl * 1000 * rng.uniform(0.9, 1.1))
                buf.append(resp(b"SET", head + str(i).encode(), value, b"PX", str(px).encode()))
                if len(buf) >= 10000:
                    f.write(b"".join(buf))
                    buf.clear()
            f.write(b"".join(buf))
        n = total - sum(c for c in counts.values())
        counts[None] = n
        f.write(b"".join(resp(b"SET", b"legacy:%d:blob" % i, b"y" * rng.randint(10, 200))
                         for i in range(n)))
    with path.open("rb") as f:
        subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=f, check=True,
                       stdout=subprocess.DEVNULL)
    path.unlink()
    return counts


def run_measured(cmd: list[str]) -> tuple[float, float, bytes]:
    """Run ``cmd``; return (seconds, peak RSS MiB of that process, stdout)."""
    out_path = WORK / "stdout.tmp"
    t = time.perf_counter()
    with out_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        _, status, usage = os.wait4(proc.pid, 0)
        err = proc.stderr.read()
        proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - t
    data = out_path.read_bytes()
    out_path.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} exited {proc.returncode}: "
                           f"{err.decode(errors='replace')[-500:]}")
    return elapsed, usage.ru_maxrss / 1024, data


EXPORTER_PACKAGE = "prometheus-redis-exporter"


def exporter_binary(install: bool) -> str | None:
    """redis_exporter's path; as root on Debian, install its package first if it is missing."""
    binary = shutil.which("prometheus-redis-exporter") or shutil.which("redis_exporter")
    if binary is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {EXPORTER_PACKAGE} (apt-get) for the comparison")
        done = subprocess.run(["apt-get", "install", "-y", "-q", EXPORTER_PACKAGE],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            print(f"  apt-get failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
        binary = shutil.which("prometheus-redis-exporter") or shutil.which("redis_exporter")
    return binary


def exporter_scrape(port: int, binary: str | None) -> tuple[float, dict[str, tuple[int, int]]] | None:
    """Time one redis_exporter scrape with -check-key-groups; None when it is not installed."""
    if binary is None:
        return None
    web = free_port()
    # each namespace's pattern captures its literal part, e.g. ^shop:(product:)[^:]+$
    groups = ",".join("^" + PREFIX + ":(" + re.escape(t.split("{")[0]).replace("\\", "%")
                      + ")[^:]+$" for _, t, _, _ in LAYOUT.values())
    proc = subprocess.Popen(
        [binary, "-redis.addr", f"redis://127.0.0.1:{port}", "-web.listen-address",
         f"127.0.0.1:{web}", "-check-key-groups", groups, "-check-keys-batch-size", "10000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", web), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        t = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics", timeout=600) as r:
            text = r.read().decode()
        elapsed = time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(10)
    found: dict[str, list[int]] = {}
    for line in text.splitlines():
        m = re.match(r'redis_key_group_(count|memory_usage_bytes)\{db="db0",key_group="([^"]*)"\}'
                     r" (\S+)", line)
        if m:
            slot = found.setdefault(m.group(2), [0, 0])
            slot[0 if m.group(1) == "count" else 1] = int(float(m.group(3)))
    return elapsed, {k: (v[0], v[1]) for k, v in found.items()}


def python_loop(url: str) -> tuple[float, dict[str, int]]:
    """The hand-written way: SCAN, then MEMORY USAGE pipelined per batch, grouped in Python."""
    import redis

    from cachectl.keyspace import NamespaceMatcher
    from cachectl.policy import parse_policy

    policy = parse_policy(policy_yaml(), "policy.yaml", {}).policy
    assert policy is not None
    matcher = NamespaceMatcher.from_policy(policy)
    r = redis.Redis.from_url(url)
    totals: dict[str, int] = {}
    t = time.perf_counter()
    cursor = 0
    while True:
        cursor, keys = r.scan(cursor, count=1000)
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.memory_usage(k)
        for k, mem in zip(keys, pipe.execute(), strict=True):
            ns = matcher.namespace_of(k if isinstance(k, bytes) else k.encode())
            name = ns.name if ns else "(unmatched)"
            totals[name] = totals.get(name, 0) + (mem or 0)
        if cursor == 0:
            break
    return time.perf_counter() - t, totals


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--skip-memkeys", action="store_true")
    ap.add_argument("--rounds", type=int, default=2,
                    help="cachectl/exporter alternations; sampled runs as many times")
    ap.add_argument("--no-install", action="store_true",
                    help="do not apt-get install redis_exporter when it is missing")
    args = ap.parse_args()
    exporter = exporter_binary(install=not args.no_install)
    # time cachectl as installed (pip writes bytecode at install time), not the first
    # import of an editable checkout that may not keep .pyc files (PYTHONDONTWRITEBYTECODE)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "cachectl")],
                   check=True, stdout=subprocess.DEVNULL)

    WORK.mkdir(parents=True, exist_ok=True)
    policy_path = WORK / "policy.yaml"
    policy_path.write_text(policy_yaml())
    server = RedisServer(WORK / "redis").start()
    port = server.port
    try:
        url = f"redis://127.0.0.1:{port}/0"
        t = time.perf_counter()
        counts = load_keys(port, args.keys)
        print(f"loaded {args.keys:,} keys in {time.perf_counter() - t:.1f}s "
              f"({len(LAYOUT)} namespaces + {counts[None]:,} unmatched); "
              f"redis-server on port {port}, {os.cpu_count()} cores")
        base = [str(CACHECTL), "inspect", "-p", str(policy_path), "--url", url, "--json"]

        # the machine is shared: alternate cachectl and the exporter and keep each one's
        # best of ROUNDS, so a burst of load does not decide the comparison
        exact_runs: list[tuple[float, float, bytes]] = []
        scrapes: list[tuple[float, dict[str, tuple[int, int]]]] = []
        for _ in range(args.rounds):
            exact_runs.append(run_measured(base))
            scraped_once = exporter_scrape(port, exporter)
            if scraped_once is not None:
                scrapes.append(scraped_once)
        exact_s, exact_rss, out = min(exact_runs, key=lambda r: r[0])
        exact = json.loads(out)
        rounds = ", ".join(f"{r[0]:.1f}" for r in exact_runs)
        rows: list[tuple[str, float, str]] = [
            ("cachectl inspect --json (exact)", exact_s,
             f"scan {exact['elapsed_s']:.2f}s, peak RSS {exact_rss:.0f} MiB; runs {rounds}s")]
        scraped = min(scrapes, key=lambda r: r[0]) if scrapes else None
        if scraped is None:
            print("redis_exporter is not installed (apt-get install prometheus-redis-exporter); "
                  "skipping that peer")
        else:
            runs = ", ".join(f"{r[0]:.1f}" for r in scrapes)
            rows.append(("redis_exporter -check-key-groups (1 scrape)", scraped[0],
                         f"{sum(c for c, _ in scraped[1].values()):,} keys grouped; "
                         f"runs {runs}s"))
        memkeys_s = None
        if not args.skip_memkeys:
            memkeys_s, _, _ = run_measured(["redis-cli", "-p", str(port), "--memkeys"])
            rows.append(("redis-cli --memkeys", memkeys_s, ""))
        loop_s, loop_totals = python_loop(url)
        rows.append(("redis-py SCAN + pipelined MEMORY USAGE", loop_s, ""))
        # best of ROUNDS for the time, like exact; the error is judged on every run
        sample_runs = [run_measured([*base, "--sample", str(args.sample)])
                       for _ in range(args.rounds)]
        samples = [json.loads(r[2]) for r in sample_runs]
        best = min(range(len(sample_runs)), key=lambda i: sample_runs[i][0])
        sample_s, sample_rss, _ = sample_runs[best]
        sampled = samples[best]
        rounds = ", ".join(f"{r[0]:.2f}" for r in sample_runs)
        rows.append((f"cachectl inspect --json --sample {args.sample}", sample_s,
                     f"scan {sampled['elapsed_s']:.2f}s, peak RSS {sample_rss:.0f} MiB; "
                     f"runs {rounds}s"))
        # the same sampled command against an empty server: what start-up (Python, the
        # imports, the policy, connecting) costs before the survey has anything to do
        empty = RedisServer(WORK / "empty").start()
        try:
            startup_s = min(run_measured([*base[:-3], "--url", empty.url, "--json", "--sample",
                                          str(args.sample)])[0] for _ in range(args.rounds))
        finally:
            empty.stop()
        load = os.getloadavg()
        print(f"load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")

        print()
        print(f"{'method':<48} {'seconds':>8} {'vs exact':>9}  notes")
        for name, secs, note in rows:
            print(f"{name:<48} {secs:8.2f} {secs / exact_s:8.2f}x  {note}")

        print()
        ex_rows = {r["namespace"]: r for r in exact["namespaces"]}
        print(f"{'namespace':<10} {'keys':>9} {'exact bytes':>13} {'sampled bytes':>14} "
              f"{'± 95%':>11} {'error':>7}  {'py loop':>8} {'exporter':>9}")
        worst = max(abs(r["memory_bytes"] / ex_rows[r["namespace"]]["memory_bytes"] - 1)
                    for doc in samples for r in doc["namespaces"])
        for r in sampled["namespaces"]:
            e = ex_rows[r["namespace"]]
            err = (r["memory_bytes"] - e["memory_bytes"]) / e["memory_bytes"]
            py_ok = "same" if loop_totals.get(r["namespace"]) == e["memory_bytes"] else "DIFF"
            exp_note = "-"
            if scraped is not None:
                literal = LAYOUT[r["namespace"]][1].split("{")[0]
                got = scraped[1].get(literal)
                exp_note = "same" if got and got[1] == e["memory_bytes"] else "DIFF"
            print(f"{r['namespace']:<10} {e['keys']:>9,} {e['memory_bytes']:>13,} "
                  f"{r['memory_bytes']:>14,} {r['memory_margin_bytes']:>11,} {err:>+7.2%}  "
                  f"{py_ok:>8} {exp_note:>9}")
        print()
        print("ratios (exact cachectl = 1):")
        if scraped is not None:
            print(f"  redis_exporter scrape / cachectl exact   = {scraped[0] / exact_s:.2f} "
                  f"(target >= 1.0)")
        if memkeys_s is not None:
            print(f"  redis-cli --memkeys / cachectl exact     = {memkeys_s / exact_s:.2f}")
        print(f"  redis-py loop / cachectl exact           = {loop_s / exact_s:.2f}")
        print(f"  cachectl exact / sampled (wall)          = {exact_s / sample_s:.1f} "
              f"(target >= 10)")
        print(f"  cachectl exact / sampled (scan only)     = "
              f"{exact['elapsed_s'] / sampled['elapsed_s']:.1f}")
        print(f"  start-up (same command, empty server)    = {startup_s:.2f} s, "
              f"{startup_s / exact_s:.1%} of exact: no sampled run can beat "
              f"{exact_s / startup_s:.1f}x")
        print(f"  worst sampled namespace error            = {worst:.2%} over {len(samples)} "
              f"run(s) (target <= 3%)")
        print(f"  peak RSS exact / sampled                 = {exact_rss:.0f} / {sample_rss:.0f} MiB "
              f"(target < 150)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
