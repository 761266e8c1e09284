"""Benchmark the application library (cachectl.Cache) against raw redis-py on one server.

Starts a throwaway redis-server (never 6379) and measures, per call, interleaved over
ROUNDS rounds (median of the rounds):

  raw GET          redis-py ``r.get(key)`` (hiredis parser): the peer
  fresh hit        ``cache.get_or_load`` on a fresh key (GET+PTTL in one round trip, JSON decode,
                   counters on); also with counters off, and with ``read_mode="lua"``
  stale hit        ``cache.get_or_load`` on a stale key while its revalidation is in flight
  L1 hit           ``cache.get_or_load`` with the in-process L1 on
  4 KiB            a fresh hit on a 4 KiB JSON value stored plain, as a zstd frame, as an lz4 one
  traced           fresh hits over 1,000 keys by a cache with ``trace: {sample: 1%}`` (about
                   10 of the keys are sampled and recorded) and by one without

Targets: fresh hit <= 1.3x raw GET; L1 hit >= 10x faster than raw GET; a 4 KiB zstd fresh hit
<= 1.15x the plain one; counters add < 5 %; tracing at 1 % adds < 3 % to a fresh hit
(what a fresh hit spends counting, CounterAggregator.add, against the hit's CPU; the A/B of
two caches, with and without counters, is printed beside a second cache with counters,
because two instances differ here by a few % whatever they count).

Then a small simulated workload shows what XFetch (early_refresh) does to stale hits:
threads read a few hot keys with a short TTL and a 20 ms loader, with and without it.

    .venv/bin/python benchmarks/library.py [--calls 500] [--rounds 41] [--seconds 3] [--repeat 3]
"""

from __future__ import annotations

import os
import sys

# for tests.support, which is not installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import dataclasses
import itertools
import json
import random
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from cachectl import Cache
from cachectl.cache.aggregator import CounterAggregator
from cachectl.cache.trace import Tracer
from cachectl.policy import Policy, parse_policy
from cachectl.policy.model import TraceSettings
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "library"
POLICY = """\
version: 1
redis: {key_prefix: bench}
namespaces:
  product: {key: "product:{id}", ttl: 1h, stale: 10m, stale_if_error: 6h, jitter: 10%}
  hot:     {key: "hot:{id}", ttl: 1s, stale: 1s, jitter: 0%}
  hot_x:   {key: "hotx:{id}", ttl: 1s, stale: 1s, jitter: 0%, early_refresh: true}
  doc:     {key: "doc:{id}", ttl: 1h, stale: 10m}
  doc_z:   {key: "docz:{id}", ttl: 1h, stale: 10m, compress: {codec: zstd, min_bytes: 1KiB}}
  doc_l:   {key: "docl:{id}", ttl: 1h, stale: 10m, compress: {codec: lz4, min_bytes: 1KiB}}
"""
VALUE = b'{"id":42,"name":"Desk lamp","price_cents":3999,"tags":["home","light"],"stock":12}'


def document_4kib() -> dict[str, Any]:
    """A product page of about 4 KiB of JSON: attributes, variants and reviews."""
    rng = random.Random(4)
    words = ["soft", "warm", "light", "sturdy", "oak", "brass", "matte", "linen", "desk", "lamp",
             "shade", "dimmable", "cable", "switch", "base", "bulb", "E27", "classic", "modern"]

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    doc: dict[str, Any] = {"id": 42, "sku": "LMP-0000042", "name": "Desk lamp",
                           "description": text(60), "variants": [], "reviews": []}
    for i in range(6):
        doc["variants"].append({"sku": f"LMP-42-{i}", "colour": rng.choice(words),
                                "price_cents": rng.randrange(1999, 9999), "stock": rng.randrange(50)})
    while len(json.dumps(doc, separators=(",", ":"))) < 4096 - 120:
        doc["reviews"].append({"user": f"u{rng.randrange(10**6)}", "stars": rng.randrange(1, 6),
                               "text": text(12)})
    return doc


def per_call_us(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """(wall, this process's CPU) µs per call."""
    cpu, started = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn()
    wall = time.perf_counter() - started
    return wall / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


def measure(cases: dict[str, Callable[[], Any]], calls: int,
            rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) µs per call of each case in every round, the cases interleaved round
    by round (the order reversed every other round)."""
    for fn in cases.values():  # warm up connections, scripts, caches
        per_call_us(fn, 500)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            samples[name].append(per_call_us(cases[name], calls))
    return samples


def medians(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def paired_cost(with_: list[tuple[float, float]],
                without: list[tuple[float, float]]) -> tuple[float, float]:
    """Median over rounds of (with − without) / without, wall and CPU. The two cases run
    next to each other in every round, so a slow spell of the machine hits both."""
    return (statistics.median((a[0] - b[0]) / b[0] for a, b in zip(with_, without, strict=True)),
            statistics.median((a[1] - b[1]) / b[1] for a, b in zip(with_, without, strict=True)))


def add_cost_us(calls: int = 200_000) -> float:
    """What counting one fresh hit costs by itself: CounterAggregator.add, µs per call."""
    counters = CounterAggregator(True)
    started = time.process_time()
    for _ in range(calls):
        counters.add("product", "fresh_hits")
    return (time.process_time() - started) / calls * 1e6


def sample_cost_us(policy: Policy, calls: int = 200_000) -> tuple[float, float]:
    """What deciding whether a key is traced costs by itself (every read pays it), µs per call:
    for a key decided lately (remembered), and for one never seen (hashed and tested)."""
    assert policy.trace is not None
    tracer = Tracer(policy.trace, policy.internal_prefix)
    keys = [f"bench:product:{i}" for i in range(1000)]
    started = time.process_time()
    for i in range(calls):
        tracer.sampled(keys[i % 1000])
    hot = (time.process_time() - started) / calls * 1e6
    cold_keys = [f"bench:product:{i}" for i in range(1000, 1000 + calls // 4)]
    started = time.process_time()
    for key in cold_keys:
        tracer.sampled(key)
    return hot, (time.process_time() - started) / len(cold_keys) * 1e6


def xfetch_workload(policy: Policy, url: str, namespace: str, seconds: float,
                    threads: int = 4, keys: int = 8) -> dict[str, Any]:
    """Readers hammer ``keys`` hot keys (ttl 1 s, stale 1 s, 20 ms loader) for ``seconds``."""
    with Cache.from_policy(policy, url, env={}, timeout_ms=200) as cache:
        loads = [0]
        lock = threading.Lock()

        def loader(i: int) -> Callable[[], Any]:
            def load() -> Any:
                time.sleep(0.020)
                with lock:
                    loads[0] += 1
                return {"id": i, "at": time.time()}
            return load

        deadline = time.monotonic() + seconds

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                i = rng.randrange(keys)
                cache.get_or_load(namespace, loader(i), id=i)
                time.sleep(0.001)

        workers = [threading.Thread(target=reader, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        c = cache.local_counters()[namespace]
    return {"requests": c.requests, "fresh": c.fresh_hits, "stale": c.stale_hits,
            "misses": c.misses, "loads": loads[0], "early": c.early_refreshes,
            "stale_share": c.stale_hits / c.requests if c.requests else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3, help="XFetch runs per variant")
    args = parser.parse_args()
    result = parse_policy(POLICY, "bench.yaml", {})
    assert result.policy is not None
    policy = result.policy
    server = RedisServer(WORK).start()
    url = server.url
    caches: list[Cache] = []
    release = threading.Event()
    try:
        raw = redis.Redis(port=server.port)
        raw.set("bench:product:1", VALUE, px=7 * 3_600_000)
        stale_pttl = 6 * 3_600_000 - 60_000  # inside the stale band (G = 6 h, stale = 10 m)
        raw.set("bench:product:2", VALUE, px=stale_pttl)

        def make(**options: Any) -> Cache:
            cache = Cache.from_policy(policy, url, env={}, timeout_ms=200, **options)
            caches.append(cache)
            return cache

        on, off, twin = make(), make(counters=False), make()
        traced_policy = dataclasses.replace(policy, trace=TraceSettings(0.01, 2_000_000))
        traced = Cache.from_policy(traced_policy, url, env={}, timeout_ms=200)
        caches.append(traced)
        raw.mset({f"bench:product:{1000 + i}": VALUE for i in range(1000)})
        for i in range(1000):
            raw.pexpire(f"bench:product:{1000 + i}", 7 * 3_600_000)
        ids, traced_ids = itertools.cycle(range(1000, 2000)), itertools.cycle(range(1000, 2000))
        lua, l1 = make(read_mode="lua"), make(l1_max_items=1000, l1_ttl_ms=60_000)
        while not l1.l1_active:
            time.sleep(0.01)

        def never() -> Any:
            raise AssertionError("a fresh hit must not load")

        def slow_refresh() -> Any:
            release.wait(600)
            return VALUE.decode()

        doc = document_4kib()
        on.set("doc", doc, id=1)
        on.set("doc_z", doc, id=1)  # stored as a zstd frame
        on.set("doc_l", doc, id=1)  # and as an lz4 one
        plain_bytes, framed_bytes = raw.strlen("bench:doc:1"), raw.strlen("bench:docz:1")
        on.get_or_load("product", slow_refresh, id=2)  # starts the one revalidation
        cases = {
            "raw GET": lambda: raw.get("bench:product:1"),
            "fresh hit": lambda: on.get_or_load("product", never, id=1),
            "fresh hit, counters off": lambda: off.get_or_load("product", never, id=1),
            "fresh hit, a 2nd cache": lambda: twin.get_or_load("product", never, id=1),
            "fresh hit, read_mode=lua": lambda: lua.get_or_load("product", never, id=1),
            "stale hit (revalidating)": lambda: on.get_or_load("product", slow_refresh, id=2),
            "L1 hit": lambda: l1.get_or_load("product", never, id=1),
            "fresh hit, 4 KiB plain": lambda: on.get_or_load("doc", never, id=1),
            "fresh hit, 4 KiB zstd": lambda: on.get_or_load("doc_z", never, id=1),
            "fresh hit, 4 KiB lz4": lambda: on.get_or_load("doc_l", never, id=1),
            "fresh hit, 1000 keys": lambda: on.get_or_load("product", never, id=next(ids)),
            "  the same, trace 1 %": lambda: traced.get_or_load("product", never, id=next(traced_ids)),
        }
        samples = measure(cases, args.calls, args.rounds)
        figures = {name: medians(v) for name, v in samples.items()}
        assert on.local_counters()["product"].stale_hits >= args.calls * args.rounds
        release.set()
        base, base_cpu = figures["raw GET"]
        print(f"per call, median of {args.rounds} interleaved rounds of {args.calls} calls "
              f"(redis-py {redis.__version__}, load average {os.getloadavg()[0]:.1f}):")
        print(f"  {'':<28} {'wall':>8}  {'ratio':>6}   {'CPU':>8}  {'ratio':>6}")
        for name, (us, cpu) in figures.items():
            print(f"  {name:<28} {us:6.1f}µs  {us / base:5.2f}x   {cpu:6.1f}µs  {cpu / base_cpu:5.2f}x")
        fresh, fresh_cpu = figures["fresh hit"]
        l1_us, l1_cpu = figures["L1 hit"]

        def verdict(ok: bool) -> str:
            return "ok" if ok else "MISSED"

        print("targets (wall; CPU in brackets, steadier on a busy machine):")
        print(f"  fresh hit / raw GET      {fresh / base:5.2f}x  [{fresh_cpu / base_cpu:5.2f}x]  "
              f"target <= 1.30x  {verdict(fresh / base <= 1.3)} [{verdict(fresh_cpu / base_cpu <= 1.3)}]")
        print(f"  raw GET / L1 hit         {base / l1_us:5.1f}x  [{base_cpu / l1_cpu:5.1f}x]  "
              f"target >= 10x    {verdict(base / l1_us >= 10)} [{verdict(base_cpu / l1_cpu >= 10)}]")
        plain, plain_cpu = figures["fresh hit, 4 KiB plain"]
        zstd, zstd_cpu = figures["fresh hit, 4 KiB zstd"]
        print(f"  4 KiB JSON, zstd / plain {zstd / plain:5.2f}x  [{zstd_cpu / plain_cpu:5.2f}x]  "
              f"target <= 1.15x  {verdict(zstd / plain <= 1.15)} [{verdict(zstd_cpu / plain_cpu <= 1.15)}]"
              f"  ({plain_bytes:,} B stored plain, {framed_bytes:,} B as a zstd frame)")
        lz4, lz4_cpu = figures["fresh hit, 4 KiB lz4"]
        print(f"    (lz4 / plain {lz4 / plain:5.2f}x  [{lz4_cpu / plain_cpu:5.2f}x], "
              f"{raw.strlen('bench:docl:1'):,} B as an lz4 frame)")
        # A fresh hit with counters calls CounterAggregator.add once: timed alone, that
        # is the counters' cost. Comparing two caches (on vs off) also carries whatever
        # tells two instances apart here; a second cache with counters on measures that.
        add_us = add_cost_us()
        share = add_us / fresh_cpu
        print(f"  counters' cost, fresh hit {share:6.1%} of its CPU ({add_us:.2f} µs per call to "
              f"CounterAggregator.add)  target < 5 %  {verdict(share < 0.05)}")
        cost, cost_cpu = paired_cost(samples["fresh hit"], samples["fresh hit, counters off"])
        twin_cost, twin_cpu = paired_cost(samples["fresh hit, a 2nd cache"], samples["fresh hit"])
        print(f"    cache with counters vs without {cost:+6.1%} [{cost_cpu:+6.1%}]; two caches "
              f"both with counters {twin_cost:+6.1%} [{twin_cpu:+6.1%}] (medians of per-round pairs)")
        trace_cost, trace_cpu = paired_cost(samples["  the same, trace 1 %"],
                                            samples["fresh hit, 1000 keys"])
        hot_us, cold_us = sample_cost_us(traced_policy)
        hit_cpu = figures["fresh hit, 1000 keys"][1]
        print(f"  trace 1 % vs none, fresh hit {trace_cost:+6.1%} [{trace_cpu:+6.1%}]  target < 3 %  "
              f"{verdict(trace_cost < 0.03)} [{verdict(trace_cpu < 0.03)}]  (medians of per-round pairs)")
        print(f"    deciding whether a key is traced: {hot_us:.2f} µs remembered ({hot_us / hit_cpu:.1%} "
              f"of the hit's CPU), {cold_us:.2f} µs for a key not seen lately ({cold_us / hit_cpu:.1%})")
        print(f"XFetch: 4 threads, 8 hot keys (ttl 1s, stale 1s, 20 ms loader), "
              f"{args.repeat} alternating runs of {args.seconds:g} s each, summed:")
        totals: dict[str, dict[str, int]] = {"hot": {}, "hot_x": {}}
        for _ in range(args.repeat):
            for ns in ("hot", "hot_x"):
                w = xfetch_workload(policy, url, ns, args.seconds)
                for k in ("requests", "stale", "misses", "loads", "early"):
                    totals[ns][k] = totals[ns].get(k, 0) + int(w[k])
        for label, ns in (("early_refresh off", "hot"), ("early_refresh on ", "hot_x")):
            t = totals[ns]
            print(f"  {label}  requests {t['requests']:6d}  stale hits {t['stale']:5d} "
                  f"({t['stale'] / t['requests']:6.2%})  misses {t['misses']:3d}  "
                  f"loads {t['loads']:4d}  early refreshes {t['early']:4d}")
    finally:
        release.set()
        for cache in caches:
            cache.close()
        server.stop()


if __name__ == "__main__":
    main()
