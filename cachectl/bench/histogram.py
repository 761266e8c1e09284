"""A high-dynamic-range latency histogram: log-linear buckets, 3 significant digits, mergeable.

The layout is HdrHistogram's: values (integer nanoseconds) below 2048 are counted
exactly; above, each power-of-two range is split into 1024 equal sub-buckets, so any
recorded value is known to within 1/1024 (< 0.1 %) of itself. ``record`` is O(1)
(one ``bit_length``, a shift and a list increment); percentiles walk the counts once.

    bucket b >= 0 covers [1024·2^b, 2048·2^b) in steps of 2^b (b = 0 also covers [0, 1024))
    counts index i = (b + 1)·1024 + (v >> b) − 1024
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

SUB_BUCKET_BITS = 11  # 2048 sub-buckets per range: 3 significant decimal digits
_HALF_BITS = SUB_BUCKET_BITS - 1
_HALF = 1 << _HALF_BITS
MAX_BUCKETS = 40  # values up to 2^50 ns (13 days); larger values are clamped
_MAX_VALUE = (1 << (MAX_BUCKETS + SUB_BUCKET_BITS - 1)) - 1
_LENGTH = (MAX_BUCKETS + 1) << _HALF_BITS

# the percentiles every result reports
STANDARD_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def counts_index(value: int) -> int:
    """The index of the bucket counting ``value`` (>= 0, ns)."""
    shift = value.bit_length() - SUB_BUCKET_BITS
    if shift < 0:
        return value
    return ((shift + 1) << _HALF_BITS) + (value >> shift) - _HALF


def lowest_equivalent(index: int) -> int:
    """The smallest value counted at ``index``."""
    shift = (index >> _HALF_BITS) - 1
    if shift < 0:
        return index
    return ((index & (_HALF - 1)) + _HALF) << shift


def bucket_width(index: int) -> int:
    """How many distinct values share the bucket at ``index``."""
    shift = (index >> _HALF_BITS) - 1
    return 1 << shift if shift > 0 else 1


@dataclass(frozen=True)
class Percentiles:
    """A latency summary in milliseconds."""

    count: int
    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


class LatencyHistogram:
    """Counts of nanosecond latencies; percentiles accurate to 3 significant digits."""

    __slots__ = ("counts", "max_ns", "min_ns", "sum_ns", "total")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * _LENGTH
        self.total = 0
        self.sum_ns = 0
        self.min_ns = 0
        self.max_ns = 0

    def record(self, value_ns: int, count: int = 1) -> None:
        """Count ``value_ns`` (clamped to [0, 2^50)) ``count`` times."""
        if value_ns < 0:
            value_ns = 0
        elif value_ns > _MAX_VALUE:
            value_ns = _MAX_VALUE
        shift = value_ns.bit_length() - SUB_BUCKET_BITS
        if shift < 0:
            self.counts[value_ns] += count
        else:
            self.counts[((shift + 1) << _HALF_BITS) + (value_ns >> shift) - _HALF] += count
        if self.total == 0 or value_ns < self.min_ns:
            self.min_ns = value_ns
        if value_ns > self.max_ns:
            self.max_ns = value_ns
        self.total += count
        self.sum_ns += value_ns * count

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts to this histogram."""
        if other.total == 0:
            return
        mine = self.counts
        for i, c in other.items():
            mine[i] += c
        self.min_ns = other.min_ns if self.total == 0 else min(self.min_ns, other.min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)
        self.total += other.total
        self.sum_ns += other.sum_ns

    def items(self) -> Iterator[tuple[int, int]]:
        """(counts index, count) for every non-empty bucket, in value order."""
        for i, c in enumerate(self.counts):
            if c:
                yield i, c

    def value_at_percentile(self, percentile: float) -> int:
        """The latency (ns) at or below which ``percentile`` % of the recorded values lie.

        Nearest-rank, like HdrHistogram: the highest value of the bucket holding the
        rank-th value, clamped to the recorded min and max. 0 when nothing was recorded.
        """
        if self.total == 0:
            return 0
        if percentile >= 100.0:
            return self.max_ns
        rank = max(1, math.ceil(percentile / 100.0 * self.total))
        seen = 0
        for i, c in self.items():
            seen += c
            if seen >= rank:
                highest = lowest_equivalent(i) + bucket_width(i) - 1
                return max(self.min_ns, min(highest, self.max_ns))
        return self.max_ns

    def percentiles(self) -> Percentiles:
        """The standard summary (p50, p90, p99, p99.9, min, mean, max) in ms."""
        ms = 1e6
        return Percentiles(
            count=self.total,
            min_ms=self.min_ns / ms,
            mean_ms=(self.sum_ns / self.total / ms) if self.total else 0.0,
            p50_ms=self.value_at_percentile(50.0) / ms,
            p90_ms=self.value_at_percentile(90.0) / ms,
            p99_ms=self.value_at_percentile(99.0) / ms,
            p999_ms=self.value_at_percentile(99.9) / ms,
            max_ms=self.max_ns / ms,
        )

    def percentile_curve(self, ticks_per_half: int = 5) -> list[tuple[float, float]]:
        """(percentile, latency ms) points spaced like HdrHistogram's distribution output.

        Points thicken towards 100 % (each halving of the remaining distance gets
        ``ticks_per_half`` steps), which is what a log-scale percentile plot needs.
        One pass over the counts, however many points.
        """
        if self.total == 0:
            return []
        wanted: list[float] = []
        remaining = 1.0
        p = 0.0
        while True:
            step = remaining / 2 / ticks_per_half
            for _ in range(ticks_per_half):
                wanted.append(p * 100)
                p += step
            remaining /= 2
            if 1 / remaining > self.total or len(wanted) > 400:
                break
        points: list[tuple[float, float]] = []
        buckets = self.items()
        seen = 0
        index = 0
        for pct in wanted:
            rank = max(1, math.ceil(pct / 100.0 * self.total))
            while seen < rank:
                index, count = next(buckets)
                seen += count
            highest = lowest_equivalent(index) + bucket_width(index) - 1
            points.append((pct, max(self.min_ns, min(highest, self.max_ns)) / 1e6))
        points.append((100.0, self.max_ns / 1e6))
        return points

    def bars(self, rows: int = 12) -> list[tuple[float, float, int]]:
        """(from ms, to ms, count) for ``rows`` log-spaced ranges between min and max."""
        if self.total == 0:
            return []
        low = max(self.min_ns, 1)
        high = max(self.max_ns, low + 1)
        ratio = (high / low) ** (1 / rows)
        edges = [low * ratio**k for k in range(rows + 1)]
        edges[-1] = high + 1
        out = [0] * rows
        k = 0
        for i, c in self.items():
            v = lowest_equivalent(i)
            while k < rows - 1 and v >= edges[k + 1]:
                k += 1
            out[k] += c
        return [(edges[j] / 1e6, min(edges[j + 1], high) / 1e6, out[j]) for j in range(rows)]

    # -- transport between worker processes and into JSON ------------------------------

    def to_state(self) -> dict[str, Any]:
        """A compact, picklable and JSON-able form: the non-empty buckets and the extremes."""
        return {"counts": [[i, c] for i, c in self.items()], "total": self.total,
                "sum_ns": self.sum_ns, "min_ns": self.min_ns, "max_ns": self.max_ns}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LatencyHistogram:
        hist = cls()
        for i, c in state["counts"]:
            hist.counts[i] += c
        hist.total = state["total"]
        hist.sum_ns = state["sum_ns"]
        hist.min_ns = state["min_ns"]
        hist.max_ns = state["max_ns"]
        return hist

    @classmethod
    def of(cls, values_ns: Iterable[int]) -> LatencyHistogram:
        hist = cls()
        for v in values_ns:
            hist.record(v)
        return hist
