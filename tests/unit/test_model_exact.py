"""The model's exact mode against an independent brute-force simulator, and against libCacheSim.

Equal miss counts, not close ones: the one-pass LRU curve at every size of a grid, the TTL curve
(fresh, stale, loads, resident bytes) for TTLs shorter and longer than the reuse times.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from tests.support.model_brute import (
    Event,
    Timing,
    columns,
    lru_hits,
    resizing_trace,
    scan_trace,
    ttl_figures,
    uniform_trace,
    zipf_trace,
)

kernels = pytest.importorskip("cachectl.model.kernels")

TRACES = {
    "zipf": lambda: zipf_trace(6000, 800, 0.9, seed=11),
    "uniform": lambda: uniform_trace(5000, 600, seed=12),
    "scans": lambda: scan_trace(5000, 3000, seed=13),
    "resizing": lambda: resizing_trace(5000, 700, seed=14),
    "bigger-than-cache": lambda: resizing_trace(4000, 500, seed=15, big=60_000),
    "two-namespaces": lambda: zipf_trace(6000, 900, 1.1, seed=16, n_ns=2),
}
# mean reuse time of these traces is a few hundred ms to seconds: TTLs below and above it
TIMINGS = {
    "no-ttl": [Timing(0), Timing(0)],
    "short-ttl": [Timing(300), Timing(150, 100, 100, 0.2)],
    "long-ttl-stale-failsafe": [Timing(3000, 1000, 2500, 0.1), Timing(20_000, 0, 0, 0.0)],
}


def _timing_arrays(timings: list[Timing]) -> tuple[np.ndarray, ...]:
    return (np.array([t.ttl_ms for t in timings], dtype=np.int64),
            np.array([t.stale_ms for t in timings], dtype=np.int64),
            np.array([t.grace_ms for t in timings], dtype=np.int64),
            np.array([t.jitter for t in timings], dtype=np.float64))


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("trace", TRACES)
def test_one_pass_lru_curve_equals_an_ordered_dict_at_every_size(trace: str, timing: str) -> None:
    events = TRACES[trace]()
    timings = TIMINGS[timing]
    cols = columns(events)
    overhead = 50
    footprint = sum({e.key: e.size + overhead for e in events}.values())
    caps = sorted({0, 1, 700, 5000, 40_000, footprint // 20, footprint // 5, footprint // 2, footprint,
                   2 * footprint})
    hits, byte_hits = kernels.lru_curve(
        cols["kid"], cols["t_ms"], cols["vsize"], cols["ns"], cols["khash"], *_timing_arrays(timings),
        np.int64(overhead), np.array(caps, dtype=np.int64), 2)
    for s, cap in enumerate(caps):
        want_hits, want_bytes = lru_hits(events, timings, cap, overhead, n_ns=2)
        assert hits[:, s].tolist() == want_hits, f"cap {cap}"
        assert byte_hits[:, s].tolist() == want_bytes, f"cap {cap}"
    assert hits[:, -1].sum() > 0


@pytest.mark.parametrize("ttl_ms", [50, 400, 2000, 60_000, 0])
@pytest.mark.parametrize("trace", ["zipf", "resizing", "scans"])
def test_ttl_curve_equals_a_per_key_timeline(trace: str, ttl_ms: int) -> None:
    events = TRACES[trace]()
    timing = Timing(ttl_ms, ttl_ms // 4, ttl_ms // 2, 0.1)
    cols = columns(events)
    t_end = events[-1].t_ms
    got = kernels.ttl_curve(cols["kid"], cols["t_ms"], cols["vsize"], cols["khash"],
                            np.int64(timing.ttl_ms), np.int64(timing.stale_ms), np.int64(timing.grace_ms),
                            timing.jitter, np.int64(64), np.int64(t_end))
    want = ttl_figures(events, timing, t_end, 64)
    assert got[:3] == want[:3]
    assert got[3] == pytest.approx(want[3], rel=1e-12)


def test_longer_ttls_never_lose_hits_on_a_fixed_trace() -> None:
    events = TRACES["zipf"]()
    cols = columns(events)
    fresh = [kernels.ttl_curve(cols["kid"], cols["t_ms"], cols["vsize"], cols["khash"], np.int64(ttl),
                               np.int64(0), np.int64(0), 0.0, np.int64(0), np.int64(events[-1].t_ms))[0]
             for ttl in (10, 100, 1000, 10_000)]
    assert fresh == sorted(fresh) and fresh[0] < fresh[-1]


def _write_oracle(path: Path, events: list[Event]) -> None:
    with path.open("wb") as out:
        for e in events:
            out.write(struct.pack("<IQIq", e.t_ms // 1000, e.key, e.size, -1))


@pytest.mark.parametrize("trace", ["zipf", "uniform", "scans"])
def test_exact_lru_equals_libcachesim(tmp_path: Path, trace: str) -> None:
    lcs = pytest.importorskip("libcachesim")
    events = TRACES[trace]()
    path = tmp_path / "trace.oracleGeneral"
    _write_oracle(path, events)
    cols = columns(events)
    footprint = sum({e.key: e.size for e in events}.values())
    caps = [footprint // 50, footprint // 10, footprint // 3, footprint]
    no_ttl = _timing_arrays([Timing(0)])
    hits, byte_hits = kernels.lru_curve(
        cols["kid"], cols["t_ms"], cols["vsize"], cols["ns"], cols["khash"], *no_ttl, np.int64(0),
        np.array(caps, dtype=np.int64), 1)
    total_bytes = sum(e.size for e in events)
    for s, cap in enumerate(caps):
        reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
        miss_ratio, byte_miss_ratio = lcs.LRU(cap).process_trace(reader)
        assert round(miss_ratio * len(events)) == len(events) - hits[0, s], f"cap {cap}"
        assert round(byte_miss_ratio * total_bytes) == total_bytes - byte_hits[0, s], f"cap {cap}"


def test_compressed_byte_hit_rate_is_a_share_of_the_bytes_as_stored(tmp_path: Path) -> None:
    """With --compression the simulated values are the stored (compressed) sizes, so the byte hit
    rate is a share of stored bytes: with room for everything, what the first access of each key
    stores, over what every access stores."""
    from cachectl.model import ModelOptions, Trace, model_trace
    from cachectl.policy import load_policy

    events = zipf_trace(4000, 500, 0.9, seed=21)
    (tmp_path / "p.yaml").write_text(
        'version: 1\nnamespaces:\n  product: {key: "product:{id}", ttl: 7d, jitter: 0}\n')
    policy = load_policy(tmp_path / "p.yaml")
    trace = Trace(time_s=np.array([e.t_ms / 1000 for e in events]),
                  key_hash=np.array([e.key for e in events], dtype=np.uint64),
                  size=np.array([e.size for e in events], dtype=np.int64),
                  ns=np.zeros(len(events), dtype=np.int32), namespaces=("product",))
    everything = 10**9
    report = model_trace(trace, policy, ModelOptions(ttls_s=(60.0,), memory_bytes=(everything,), exact=True,
                                                     compression=(("product", 4.0, 1000),)))

    def stored(size: int) -> int:
        return -(-size // 4) if size >= 1000 else size

    seen: set[int] = set()
    first = 0
    for e in events:
        if e.key not in seen:
            seen.add(e.key)
            first += stored(e.size)
    total = sum(stored(e.size) for e in events)
    point = next(p for p in report.namespaces[0].memory_curve if p.bytes == everything)
    assert point.byte_hit_rate == pytest.approx(1 - first / total, abs=1e-12)
    assert point.hit_rate == pytest.approx(1 - len(seen) / len(events), abs=1e-12)


def test_hot_keys_are_counted_over_every_event_when_the_curves_are_sampled(tmp_path: Path) -> None:
    """A 10 % sample leaves most keys out of the curves, not out of the hot keys: the hottest
    keys and their request counts are those of the whole trace."""
    from collections import Counter

    from cachectl.model import ModelOptions, Trace, model_trace
    from cachectl.policy import load_policy

    events = zipf_trace(20_000, 2000, 1.0, seed=22)
    (tmp_path / "p.yaml").write_text('version: 1\nnamespaces:\n  product: {key: "product:{id}", ttl: 1h}\n')
    trace = Trace(time_s=np.array([e.t_ms / 1000 for e in events]),
                  key_hash=np.array([e.key for e in events], dtype=np.uint64),
                  size=np.array([e.size for e in events], dtype=np.int64),
                  ns=np.zeros(len(events), dtype=np.int32), namespaces=("product",))
    report = model_trace(trace, load_policy(tmp_path / "p.yaml"), ModelOptions(sample_rate=0.1))
    assert report.sampled
    top = Counter(e.key for e in events).most_common(10)
    got = [(int(h.key_hash, 16), h.requests) for h in report.namespaces[0].hot_keys]
    assert got == top
