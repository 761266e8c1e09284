"""Benchmark: `cachectl model`'s one-pass memory curve against simulating each size apart.

In one run, on one Zipf trace (default 1M requests over 50k keys, values 200-2000 B):

  1. the exact LRU curve at 100 sizes in one pass (cachectl.model.kernels.lru_curve)
  2. libcachesim's LRU run once per size, on the same trace as an oracleGeneral file
  3. an ordered-dict LRU in Python run once per size
  4. the TTL curve at 20 TTLs
  5. `cachectl model --sample 1% --json` end to end on 5M events (oracleGeneral), wall time and
     peak RSS of the process

and checks the three LRU curves agree hit for hit. Times depend on the machine's load; compare the
ratios printed, which are against the peers in the same run.

    .venv/bin/python benchmarks/model.py [--requests 1000000] [--keys 50000] [--sizes 100] [--skip-peers]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from cachectl.model import kernels


def zipf_trace(requests: int, keys: int, alpha: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    p = np.arange(1, keys + 1, dtype=np.float64) ** -alpha
    p /= p.sum()
    ids = rng.choice(keys, size=requests, p=p)
    sizes = rng.integers(200, 2001, size=keys)
    times = np.arange(requests, dtype=np.int64) // 1000  # 1000 requests per second
    return ids.astype(np.int64), sizes[ids].astype(np.int64), times


def write_oracle(path: Path, ids: np.ndarray, sizes: np.ndarray, times: np.ndarray) -> None:
    dtype = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    records = np.zeros(len(ids), dtype=dtype)
    records["time"] = times
    records["id"] = ids + 1
    records["size"] = sizes
    records["next"] = -1
    records.tofile(path)


def ordered_dict_lru(ids: list[int], sizes: list[int], cap: int) -> int:
    """Hits of a byte-bounded LRU cache: the plain Python way, one size per pass."""
    cache: OrderedDict[int, int] = OrderedDict()
    used = 0
    hits = 0
    for key, size in zip(ids, sizes, strict=True):
        old = cache.pop(key, None)
        if old is not None:
            hits += 1
            used -= old
        cache[key] = size
        used += size
        while used > cap:
            used -= cache.popitem(last=False)[1]
    return hits


def compare_peers(tmp: Path, ids: np.ndarray, sizes: np.ndarray, times: np.ndarray, caps: np.ndarray,
                  hits: list[int], one_pass_s: float) -> None:
    """Steps 2 and 3: libcachesim and the ordered dict once per size; all three must agree."""
    import libcachesim as lcs

    oracle = tmp / "trace.oracleGeneral"
    write_oracle(oracle, ids, sizes, times)
    started = time.perf_counter()
    lcs_miss = []
    for cap in caps:
        reader = lcs.TraceReader(str(oracle), lcs.TraceType.ORACLE_GENERAL_TRACE)
        # hashpower 20: a table sized for this trace (the default, 24, allocates 16M buckets a run)
        lcs_miss.append(lcs.LRU(int(cap), hashpower=20).process_trace(reader)[0])
    lcs_s = time.perf_counter() - started
    print(f"2. libcachesim LRU, once per size: {lcs_s:.2f} s")

    id_list, size_list = ids.tolist(), sizes.tolist()
    started = time.perf_counter()
    od_hits = [ordered_dict_lru(id_list, size_list, int(cap)) for cap in caps]
    od_s = time.perf_counter() - started
    print(f"3. ordered-dict LRU, once per size: {od_s:.2f} s")

    assert hits == od_hits, "the one-pass curve and the ordered dict disagree"
    assert [round(m * len(ids)) for m in lcs_miss] == [len(ids) - h for h in od_hits], \
        "libcachesim disagrees"
    print(f"   all three agree at every size (hit rate {hits[0] / len(ids):.3f}.."
          f"{hits[-1] / len(ids):.3f})")
    print(f"   ratio: libcachesim / one pass = {lcs_s / one_pass_s:.1f}x, "
          f"ordered dict / one pass = {od_s / one_pass_s:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--sizes", type=int, default=100)
    ap.add_argument("--big-events", type=int, default=5_000_000)
    ap.add_argument("--skip-peers", action="store_true", help="Skip libcachesim and the ordered dict.")
    args = ap.parse_args()

    ids, sizes, times = zipf_trace(args.requests, args.keys, args.alpha, seed=1)
    footprint = int(sum(dict(zip(ids.tolist(), sizes.tolist(), strict=True)).values()))
    caps = np.unique(np.geomspace(footprint / 1000, footprint, args.sizes).astype(np.int64))
    khash, kid = np.unique(ids.astype(np.uint64) + np.uint64(1), return_inverse=True)
    t_ms = times * 1000
    ns = np.zeros(len(ids), dtype=np.int32)
    no_ttl = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1))
    print(f"trace: {len(ids):,} requests over {len(khash):,} keys, Zipf({args.alpha}), "
          f"{footprint / 2**20:.1f} MiB of values; {len(caps)} cache sizes "
          f"{caps[0] / 2**10:.0f} KiB..{caps[-1] / 2**20:.1f} MiB")

    started = time.perf_counter()
    kernels.lru_curve(kid[:1000], t_ms[:1000], sizes[:1000], ns[:1000], khash, *no_ttl, np.int64(0),
                      caps[:2], 1)
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    hits, _ = kernels.lru_curve(kid.astype(np.int64), t_ms, sizes, ns, khash, *no_ttl, np.int64(0), caps, 1)
    one_pass_s = time.perf_counter() - started
    started = time.perf_counter()
    kernels.lru_curve(kid.astype(np.int64), t_ms, sizes, ns, khash, *no_ttl, np.int64(0), caps[:1], 1)
    one_size_s = time.perf_counter() - started
    print(f"\n1. cachectl one pass, {len(caps)} sizes: {one_pass_s:.2f} s "
          f"(one size alone: {one_size_s:.2f} s; numba compile or cache load first: {compile_s:.2f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_peers:
            compare_peers(Path(tmp), ids, sizes, times, caps, hits[0].tolist(), one_pass_s)

        ttls = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 43200,
                86400, 3 * 86400, 7 * 86400]
        started = time.perf_counter()
        for ttl in ttls:
            kernels.ttl_curve(kid.astype(np.int64), t_ms, sizes, khash, np.int64(ttl * 1000), np.int64(0),
                              np.int64(0), 0.1, np.int64(225), np.int64(t_ms[-1]))
        print(f"4. TTL curve, {len(ttls)} TTLs: {time.perf_counter() - started:.2f} s")

        big = Path(tmp) / "big.oracleGeneral"
        bids, bsizes, btimes = zipf_trace(args.big_events, max(args.keys, args.big_events // 10), args.alpha,
                                          seed=2)
        write_oracle(big, bids, bsizes, btimes)
        del bids, bsizes, btimes
        policy = Path(tmp) / "cachectl.yaml"
        policy.write_text('version: 1\nnamespaces:\n  product: {key: "product:{id}", ttl: 10m, stale: 1m}\n')
        # once on a small trace first, so numba's cache is warm (a cold one compiles for seconds)
        small = Path(tmp) / "small.oracleGeneral"
        write_oracle(small, *zipf_trace(10_000, 1000, args.alpha, seed=3))
        subprocess.run([sys.executable, "-m", "cachectl", "model", "-p", str(policy), "--trace", str(small),
                        "--namespace", "product", "--json"], capture_output=True, check=False)
        # the child reports its own peak RSS and CPU (RUSAGE_CHILDREN would take the larger of
        # the two runs, and a first run that compiles peaks higher than any model)
        measure = ("import resource, sys\nfrom cachectl.cli import main\ncode = main(sys.argv[1:])\n"
                   "r = resource.getrusage(resource.RUSAGE_SELF)\n"
                   "sys.stderr.write(f'usage {r.ru_maxrss} {r.ru_utime + r.ru_stime}\\n')\nsys.exit(code)")
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", measure, "model", "-p", str(policy), "--trace", str(big),
                              "--namespace", "product", "--sample", "1%", "--json"],
                             capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if out.returncode not in (0, 1):
            sys.exit(f"cachectl model failed ({out.returncode}): {out.stderr}")
        usage = out.stderr.strip().splitlines()[-1].split()
        rss_mib, cpu_s = int(usage[1]) / 1024, float(usage[2])
        print(f"5. cachectl model --sample 1% on {args.big_events:,} events, end to end: {wall:.2f} s wall, "
              f"{cpu_s:.2f} s CPU, peak RSS {rss_mib:.0f} MiB (targets: < 10 s, < 500 MB; wall time "
              f"includes waiting for a CPU on a loaded machine: load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
