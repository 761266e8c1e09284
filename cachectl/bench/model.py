"""What a benchmark is asked to do (``BenchConfig``) and what it found (``BenchResult``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from cachectl.bench.histogram import LatencyHistogram, Percentiles
from cachectl.errors import UsageError

MAX_KEYS = 2_000_000  # per namespace; each key's commands are held in memory


class BenchMode(StrEnum):
    CACHED = "cached"  # the whole key range
    HOT = "hot"  # a small working set, read over and over
    MIXED = "mixed"  # reads and policy-TTL writes at --read-ratio


class Verdict(StrEnum):
    PASS = "PASS"  # noqa: S105 (a verdict, not a password)
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Distribution:
    """How keys are picked: uniform, or zipf with exponent ``s`` (rank 1 most read)."""

    kind: str = "uniform"
    s: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Distribution:
        """``uniform`` or ``zipf:S`` (``zipf`` alone means S = 1.0); UsageError otherwise."""
        t = text.strip().lower()
        if t == "uniform":
            return cls()
        if t == "zipf" or t.startswith("zipf:"):
            raw = t.partition(":")[2] or "1.0"
            try:
                s = float(raw)
            except ValueError:
                s = -1.0
            if s > 0 and math.isfinite(s):
                return cls("zipf", s)
        raise UsageError(f"--distribution {text!r} is not uniform or zipf:S",
                         hint="e.g. --distribution zipf:1.0 (S > 0; larger is more skewed)")

    def __str__(self) -> str:
        return f"zipf:{self.s:g}" if self.kind == "zipf" else "uniform"

    def cdf(self, n: int) -> list[float] | None:
        if self.kind != "zipf":
            return None
        total = 0.0
        out = []
        for rank in range(1, n + 1):
            total += rank ** -self.s
            out.append(total)
        return out


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how hard. Durations in milliseconds."""

    namespaces: tuple[str, ...] = ()  # empty: every namespace of the policy
    modes: tuple[BenchMode, ...] = (BenchMode.CACHED,)
    duration_ms: int | None = 10_000
    requests: int | None = None  # measured requests per run (all clients together)
    warmup_ms: int = 1000
    clients: int = 1
    pipeline: int = 1
    read_ratio: float = 0.9
    distribution: Distribution = field(default_factory=Distribution)
    value_size: int | None = None  # None: sampled from real keys
    keys: int = 10_000
    origin: bool = False
    existing: bool = False
    keep: bool = False
    parallel: str = "auto"  # auto | threads | processes
    seed: int | None = None
    source_env: Mapping[str, str] = field(default_factory=dict, repr=False)  # for --origin

    def validate(self) -> None:
        """UsageError for a value or combination that cannot run."""
        if self.requests is not None and self.requests < 1:
            raise UsageError("--requests must be at least 1")
        if self.duration_ms is not None and self.duration_ms <= 0:
            raise UsageError("--duration must be positive", hint="e.g. --duration 30s")
        if self.warmup_ms < 0:
            raise UsageError("--warmup cannot be negative")
        if self.clients < 1 or self.pipeline < 1:
            raise UsageError("--clients and --pipeline must be at least 1")
        if self.clients > 256:
            raise UsageError("--clients above 256 would measure this machine, not Redis")
        if not 0.0 <= self.read_ratio <= 1.0:
            raise UsageError(f"--read-ratio {self.read_ratio:g} is not between 0 and 1",
                             hint="e.g. --read-ratio 0.9 (90 % reads)")
        if not 1 <= self.keys <= MAX_KEYS:
            raise UsageError(f"--keys must be between 1 and {MAX_KEYS:,}")
        if self.value_size is not None and self.value_size < 1:
            raise UsageError("--value-size must be at least 1 byte")
        if self.existing and BenchMode.MIXED in self.modes:
            raise UsageError("--existing reads only; mixed mode writes",
                             hint="drop --existing to benchmark writes on benchmark keys")
        if self.existing and self.keep:
            raise UsageError("--keep has no meaning with --existing (nothing is written)")
        if self.parallel not in ("auto", "threads", "processes"):
            raise UsageError(f"unknown parallelism {self.parallel!r}")


@dataclass(frozen=True)
class OriginResult:
    """How the cache compares with loading the same rows from the namespace's origin."""

    source: str
    timed: bool
    reason: str | None = None  # why the origin was not timed
    samples: int = 0
    missing_rows: int = 0
    latency: Percentiles | None = None
    speedup_p50: float | None = None  # origin p50 / cached p50
    hit_rate: float = 0.0  # the policy's hit-rate threshold for the namespace
    origin_calls_saved: float = 0.0  # share of origin calls that hit rate saves
    faster_at_hit_rate: float | None = None  # 1 − (mean read with the cache / origin mean)


@dataclass(frozen=True)
class RunResult:
    """One namespace benchmarked in one mode."""

    namespace: str
    mode: BenchMode
    verdict: Verdict
    reasons: tuple[str, ...]
    key_source: str  # generated | warm source | existing
    keys: int
    working_set: int
    value_bytes_mean: float
    value_size_source: str
    clients: int
    pipeline: int
    distribution: str
    read_ratio: float | None
    requests: int
    reads: int
    misses: int
    errors: int
    timeouts: int
    seconds: float
    throughput_rps: float
    latency: Percentiles
    threshold: str
    threshold_p99_ms: float
    first_error: str | None = None
    origin: OriginResult | None = None
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram, compare=False,
                                        repr=False)

    def to_json(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "histogram"}
        doc["percentile_curve"] = [{"percentile": p, "latency_ms": v}
                                   for p, v in self.histogram.percentile_curve()]
        return doc


@dataclass(frozen=True)
class BenchResult:
    """Every run, and what the benchmark left behind."""

    server: str
    parallelism: str
    runs: tuple[RunResult, ...]
    keys_written: int
    keys_removed: int
    kept: bool
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return all(r.verdict is not Verdict.FAIL for r in self.runs)

    @property
    def failed(self) -> tuple[RunResult, ...]:
        return tuple(r for r in self.runs if r.verdict is Verdict.FAIL)
