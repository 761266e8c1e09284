"""The trace the library captured (cachectl/cache/trace.py), read back from its Redis streams.

Every shard stream is read with XRANGE in chunks; the events are merged in time order (a fleet's
processes and the shards interleave). The trace keeps the rate it was captured at
(``Trace.sample_rate``) so the model scales counts and sizes as SHARDS does. Events captured at
different rates (the policy's rate changed) are cut down to the lowest: the sampling test is
nested, so the keys under the lowest rate kept every access.

Events the library could not keep (its buffer full, Redis down) are counted per namespace as the
``trace_dropped`` counter beside the others; ``dropped_events`` reads them back for the trace's
span, and ``with_dropped`` puts them in the model's report.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from cachectl.cache.trace import stream_keys
from cachectl.counter_format import COUNTER_RETENTION_S, read_window
from cachectl.model.analyze import keeps_key
from cachectl.model.results import ModelReport
from cachectl.model.trace import Trace, TraceError
from cachectl.policy.model import Policy

CHUNK = 10_000


Entry = tuple[bytes, dict[bytes, bytes]]


def _events(client: Any, stream: str, on_progress: Callable[[int], None]) -> list[Entry]:
    out: list[Entry] = []
    start = "-"
    while True:
        chunk = client.xrange(stream, min=start, count=CHUNK)
        if not chunk:
            return out
        out.extend(chunk)
        on_progress(len(out))
        if len(chunk) < CHUNK:
            return out
        start = "(" + chunk[-1][0].decode()  # exclusive: after the last id read


def read_stream_trace(client: Any, policy: Policy,
                      on_progress: Callable[[str, int], None] = lambda task, done: None) -> Trace:
    """The library's captured trace under ``policy``'s prefix. Raises TraceError."""
    import numpy as np

    index = {name: i for i, name in enumerate(policy.namespaces)}
    rows: list[tuple[float, int, int, int, float]] = []
    for stream in stream_keys(policy.internal_prefix):
        for entry_id, fields in _events(client, stream, lambda done: on_progress("reading trace", done)):
            where = f"{stream} entry {entry_id.decode()}"
            try:
                name = fields[b"ns"].decode()
                row = (float(fields[b"t"]), int(fields[b"h"]), int(fields[b"s"]), float(fields[b"r"]))
            except (KeyError, ValueError, UnicodeDecodeError):
                raise TraceError(f"{where}: not a trace event of this cachectl",
                                 hint="cachectl.Cache writes it, given a trace: section") from None
            if name not in index:
                raise TraceError(f"{where}: unknown namespace {name!r}",
                                 hint="the policy's namespaces: " + ", ".join(policy.namespaces))
            if not 0 < row[3] <= 1 or row[2] < 0:
                raise TraceError(f"{where}: sample rate {row[3]:g} or size {row[2]} makes no sense")
            rows.append((row[0], row[1], row[2], index[name], row[3]))
    if not rows:
        raise TraceError(f"no trace events under {policy.internal_prefix}:trace:*",
                         hint="add trace: {sample: 1%} to the policy and let the library run "
                         "(or give --trace FILE)")
    rate = min(r[4] for r in rows)
    if any(r[4] != rate for r in rows):
        keep = keeps_key(rate)
        rows = [r for r in rows if keep(r[1])]
    rows.sort(key=lambda r: r[0])
    return Trace(
        time_s=np.array([r[0] for r in rows], dtype=np.float64),
        key_hash=np.array([r[1] for r in rows], dtype=np.uint64),
        size=np.array([r[2] for r in rows], dtype=np.int64),
        ns=np.array([r[3] for r in rows], dtype=np.int32),
        namespaces=tuple(policy.namespaces),
        sources=(f"{policy.internal_prefix}:trace:* (sampled at {rate:.4g})",),
        sample_rate=rate)


def dropped_events(client: Any, policy: Policy, since_s: float,
                   now_s: float | None = None) -> dict[str, int]:
    """Trace events the library dropped per namespace (non-zero only), from the minute of
    ``since_s`` (the trace's first event) to now.

    Read from the per-minute counter buckets (``trace_dropped``), so at most the last
    ``COUNTER_RETENTION_S`` are counted; one minute past now too, for a writer whose clock
    runs a little ahead.
    """
    now = time.time() if now_s is None else now_s
    last = int(now // 60) + 1
    first = max(int(since_s // 60), last - COUNTER_RETENTION_S // 60)
    counts = read_window(client, policy.internal_prefix, range(first, last + 1))
    return {name: c.trace_dropped for name, c in sorted(counts.items()) if c.trace_dropped}


def with_dropped(report: ModelReport, dropped: dict[str, int]) -> ModelReport:
    """``report`` saying how many events of the captured trace the library dropped."""
    return dataclasses.replace(
        report, trace_dropped=sum(dropped.values()),
        namespaces=tuple(dataclasses.replace(m, trace_dropped=dropped.get(m.namespace, 0))
                         for m in report.namespaces))
