"""The latency histogram: exact below 2048 ns, within 1/1024 above, mergeable, O(1) record."""

from __future__ import annotations

import math
import random

import pytest

from cachectl.bench.histogram import (
    LatencyHistogram,
    bucket_width,
    counts_index,
    lowest_equivalent,
)


def exact_percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def test_small_values_are_counted_exactly() -> None:
    values = list(range(1, 1001))
    hist = LatencyHistogram.of(values)
    for p in (1, 10, 50, 90, 99, 99.9):
        assert hist.value_at_percentile(p) == exact_percentile(values, p)
    assert hist.value_at_percentile(100) == 1000
    assert (hist.min_ns, hist.max_ns, hist.total) == (1, 1000, 1000)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_three_significant_digits(seed: int) -> None:
    rng = random.Random(seed)
    # latencies from 20 µs to seconds, long-tailed like real ones
    values = [int(rng.lognormvariate(11, 1.5)) + 20_000 for _ in range(20_000)]
    hist = LatencyHistogram.of(values)
    for p in (50, 90, 99, 99.9, 99.99):
        exact = exact_percentile(values, p)
        got = hist.value_at_percentile(p)
        assert got >= exact  # the bucket's highest value, never below the true one
        assert (got - exact) / exact < 1 / 1024
    assert hist.max_ns == max(values)
    assert hist.min_ns == min(values)
    assert hist.percentiles().mean_ms == pytest.approx(sum(values) / len(values) / 1e6)


def test_every_value_falls_inside_its_bucket() -> None:
    for v in [0, 1, 2047, 2048, 2049, 4095, 4096, 123_456_789, 10**12, 2**45 + 12345]:
        i = counts_index(v)
        low = lowest_equivalent(i)
        assert low <= v < low + bucket_width(i)
        assert bucket_width(i) <= max(1, low / 1024)


def test_record_with_a_count_equals_repeated_records() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    a.record(5_000_000, 16)
    for _ in range(16):
        b.record(5_000_000)
    assert a.to_state() == b.to_state()


def test_merged_histograms_equal_one_histogram_of_all_values() -> None:
    rng = random.Random(7)
    parts = [[rng.randrange(10_000, 50_000_000) for _ in range(500)] for _ in range(4)]
    merged = LatencyHistogram()
    for part in parts:
        merged.merge(LatencyHistogram.from_state(LatencyHistogram.of(part).to_state()))
    whole = LatencyHistogram.of([v for part in parts for v in part])
    assert merged.to_state() == whole.to_state()
    assert merged.percentiles() == whole.percentiles()


def test_merging_an_empty_histogram_changes_nothing() -> None:
    hist = LatencyHistogram.of([3000, 4000])
    before = hist.to_state()
    hist.merge(LatencyHistogram())
    assert hist.to_state() == before
    empty = LatencyHistogram()
    empty.merge(hist)
    assert empty.min_ns == 3000


def test_empty_histogram_reports_zeros() -> None:
    hist = LatencyHistogram()
    assert hist.value_at_percentile(99) == 0
    assert hist.percentiles().count == 0
    assert hist.bars() == []
    assert hist.percentile_curve() == []


def test_out_of_range_values_are_clamped_not_lost() -> None:
    hist = LatencyHistogram()
    hist.record(-5)
    hist.record(2**60)
    assert hist.total == 2
    assert hist.min_ns == 0
    assert hist.value_at_percentile(100) == hist.max_ns > 2**49


def test_bars_count_every_value_and_curve_rises_to_max() -> None:
    rng = random.Random(3)
    values = [rng.randrange(20_000, 5_000_000) for _ in range(3000)]
    hist = LatencyHistogram.of(values)
    bars = hist.bars(10)
    assert len(bars) == 10
    assert sum(c for _, _, c in bars) == 3000
    assert bars[0][0] == pytest.approx(min(values) / 1e6)
    curve = hist.percentile_curve()
    assert curve[-1] == (100.0, max(values) / 1e6)
    latencies = [v for _, v in curve]
    assert latencies == sorted(latencies)
    assert [p for p, _ in curve] == sorted(p for p, _ in curve)


def test_curve_points_equal_the_percentiles_they_name() -> None:
    rng = random.Random(11)
    hist = LatencyHistogram.of(int(rng.lognormvariate(12, 1.2)) for _ in range(50_000))
    curve = hist.percentile_curve()
    assert len(curve) > 50
    for p, ms in curve[:-1]:
        assert ms == hist.value_at_percentile(p) / 1e6
