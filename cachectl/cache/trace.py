"""The library's access trace: hash-sampled events, buffered, written with the counters.

A key is traced iff its ``key_hash`` passes the same SHARDS test ``cachectl model`` samples
with (``keeps_key``), so every access of a traced key is recorded and a trace captured at a
rate can be modelled at that rate or below. An event is (time s, namespace, key hash, value
bytes, outcome, load ms); never the key or the value. Events wait in a bounded deque and
leave with the counter writes (``write``: one XADD each on the same pipeline) into capped
streams ``<internal_prefix>:trace:{N}``, one per hash tag so a cluster spreads them over
slots. An event that cannot be kept (the deque is full, the write failed) is dropped and
counted (``dropped``), never queued without bound; ``on_drop(namespace, n)`` is told of each
drop, so the cache writes the count with its counters (``trace_dropped``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from cachectl.model.analyze import keeps_key
from cachectl.model.trace import key_hash
from cachectl.policy.model import TraceSettings

TRACE_SHARDS = 4  # stream keys on 4 hash tags: no cluster shard takes the whole trace
MAX_BUFFERED = 100_000  # events waiting for the next write (about 2 s at 50k traced reads/s)
# keys whose decision is remembered: hashing and testing a key costs ~1 µs, a look-up ~0.07 µs,
# and the keys read most (the fresh hits) stay in it; cleared when full, so bounded
MEMO_KEYS = 65_536
OUTCOMES = ("fresh", "stale", "fail-safe", "miss")


def stream_keys(internal_prefix: str) -> list[str]:
    """The trace streams of a policy (``shop:cachectl:trace:{0}`` …)."""
    return [f"{internal_prefix}:trace:{{{n}}}" for n in range(TRACE_SHARDS)]


class TraceEvent(NamedTuple):
    time_s: float
    namespace: str
    key_hash: int
    size: int
    outcome: str
    load_ms: float | None


class Tracer:
    """Samples keys, buffers their events, and hands them to the counter write."""

    def __init__(self, settings: TraceSettings, internal_prefix: str,
                 wall_clock: Callable[[], float] = time.time,
                 on_drop: Callable[[str, int], None] = lambda namespace, n: None) -> None:
        self.rate = settings.sample
        self._keep = keeps_key(settings.sample)
        self._streams = stream_keys(internal_prefix)
        # MAXLEN ~ per stream: the policy's cap shared by the shards
        self._maxlen = max(1, settings.max_events // TRACE_SHARDS)
        self._wall = wall_clock
        self._events: deque[TraceEvent] = deque()
        self._lock = threading.Lock()
        self._memo: dict[str, int | None] = {}
        self._sizes: dict[int, int] = {}  # traced key -> its last stored size (for L1 hits, loads)
        self.dropped = 0
        self._on_drop = on_drop

    def sampled(self, key: str) -> int | None:
        """The key's hash when it is in the sample, else None."""
        try:
            return self._memo[key]
        except KeyError:
            pass
        h = key_hash(key.encode())
        sampled = h if self._keep(h) else None
        if len(self._memo) >= MEMO_KEYS:
            self._memo.clear()
        self._memo[key] = sampled
        return sampled

    def remember(self, key: str, size: int) -> None:
        """A value of ``size`` bytes was stored under ``key`` (kept when the key is traced)."""
        h = self.sampled(key)
        if h is not None:
            if len(self._sizes) >= MAX_BUFFERED:
                self._sizes.clear()
            self._sizes[h] = size

    def record(self, namespace: str, h: int, size: int | None, outcome: str,
               load_ms: float | None = None) -> None:
        """One access of traced key ``h``; ``size`` None: the size it was last stored with."""
        if size is None:
            size = self._sizes.get(h, 0)
        elif size:
            self._sizes[h] = size
        event = TraceEvent(self._wall(), namespace, h, size, outcome, load_ms)
        with self._lock:
            if len(self._events) < MAX_BUFFERED:
                self._events.append(event)
                return
            self.dropped += 1
        self._on_drop(namespace, 1)

    @property
    def pending(self) -> bool:
        return bool(self._events)

    def drain(self) -> list[TraceEvent]:
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    def lost(self, events: list[TraceEvent]) -> None:
        """Events whose write failed: dropped and counted (never sent again)."""
        with self._lock:
            self.dropped += len(events)
        by_namespace: dict[str, int] = {}
        for e in events:
            by_namespace[e.namespace] = by_namespace.get(e.namespace, 0) + 1
        for namespace, n in by_namespace.items():
            self._on_drop(namespace, n)

    def write(self, pipe: Any, events: list[TraceEvent]) -> None:
        """Queue one capped XADD per event on ``pipe`` (the counters' pipeline)."""
        rate = repr(self.rate)
        for e in events:
            fields = {"t": f"{e.time_s:.6f}", "ns": e.namespace, "h": str(e.key_hash),
                      "s": str(e.size), "o": e.outcome, "r": rate}
            if e.load_ms is not None:
                fields["l"] = f"{e.load_ms:.3f}"
            pipe.xadd(self._streams[e.key_hash % TRACE_SHARDS], fields,
                      maxlen=self._maxlen, approximate=True)
