"""cachectl bench: read latency as the application sees it, against the policy's thresholds.

The measuring clients write pre-encoded RESP on raw sockets and parse replies with
hiredis (``worker``), so the figures are Redis's and the network's, not redis-py's.
Latencies go into an HDR-style histogram (``histogram``); ``model`` holds the
configuration and result types; ``runner.run_bench``
prepares keys, drives the clients and judges each namespace × mode.
"""

from __future__ import annotations

from cachectl.bench.histogram import LatencyHistogram, Percentiles
from cachectl.bench.model import (
    BenchConfig,
    BenchMode,
    BenchResult,
    Distribution,
    OriginResult,
    RunResult,
    Verdict,
)
from cachectl.bench.runner import BenchTarget, endpoint_of, run_bench

__all__ = [
    "BenchConfig",
    "BenchMode",
    "BenchResult",
    "BenchTarget",
    "Distribution",
    "LatencyHistogram",
    "OriginResult",
    "Percentiles",
    "RunResult",
    "Verdict",
    "endpoint_of",
    "run_bench",
]
