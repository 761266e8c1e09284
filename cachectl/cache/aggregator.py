"""The in-memory counter aggregator behind ``Cache``: counted per call, written in the background.

Counts are kept per (epoch minute, namespace, counter) so a write that is delayed (Redis
down) still lands in the minute the calls happened. ``drain`` hands the pending deltas to
the writer, which queues them with ``cachectl.counter_format.write_buckets`` on one pipeline;
``restore`` puts them back when the write surely failed, keeping at most
``MAX_PENDING_MINUTES``; ``discard`` drops a write whose reply timed out (the server may
have applied it, and sending it again could count it twice: at most once, as metrics
clients do).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

from cachectl.counter_format import COUNTER_NAMES, NamespaceCounters

MAX_PENDING_MINUTES = 120

Deltas = dict[int, dict[tuple[str, str], int]]


class CounterAggregator:
    """Thread-safe per-namespace counters; ``enabled=False`` keeps only load times (XFetch)."""

    def __init__(self, enabled: bool = True, wall_clock: Callable[[], float] = time.time) -> None:
        self.enabled = enabled
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, str, str], int] = defaultdict(int)
        self._totals: dict[tuple[str, str], int] = defaultdict(int)
        self._load_stats: dict[str, tuple[int, int]] = {}  # ns -> (loads, load_us)
        self.dropped = 0  # counts given up by ``discard`` (written at most once)

    def add(self, namespace: str, counter: str, amount: int = 1) -> None:
        if not self.enabled:
            return
        minute = int(self._wall() // 60)
        with self._lock:  # one dict update per call: this is on every cache read
            self._pending[(minute, namespace, counter)] += amount

    def add_load(self, namespace: str, load_us: int) -> None:
        """One successful load of ``load_us`` microseconds (feeds XFetch's Δ)."""
        with self._lock:
            loads, total = self._load_stats.get(namespace, (0, 0))
            self._load_stats[namespace] = (loads + 1, total + load_us)
        self.add(namespace, "loads")
        self.add(namespace, "load_us", load_us)

    def mean_load_ms(self, namespace: str) -> float | None:
        stats = self._load_stats.get(namespace)
        return stats[1] / stats[0] / 1000.0 if stats and stats[0] else None

    def totals(self) -> dict[str, NamespaceCounters]:
        """Everything counted by this process since it started (a copy)."""
        with self._lock:
            totals = list(self._totals.items())
            totals += [((ns, counter), amount) for (_, ns, counter), amount in self._pending.items()]
        out: dict[str, NamespaceCounters] = {}
        for (namespace, counter), amount in totals:
            if counter in COUNTER_NAMES:
                out.setdefault(namespace, NamespaceCounters()).add(counter, amount)
        return out

    def drain(self) -> Deltas:
        with self._lock:
            pending, self._pending = self._pending, defaultdict(int)
            for (_, namespace, counter), amount in pending.items():
                self._totals[(namespace, counter)] += amount  # counted, written or not
        deltas: Deltas = {}
        for (minute, namespace, counter), amount in pending.items():
            if amount and counter in COUNTER_NAMES:
                deltas.setdefault(minute, {})[(namespace, counter)] = amount
        return deltas

    def restore(self, deltas: Deltas) -> None:
        """Put back deltas whose write failed (the oldest minutes beyond the cap are dropped)."""
        with self._lock:
            for minute, table in deltas.items():
                for (namespace, counter), amount in table.items():
                    self._pending[(minute, namespace, counter)] += amount
                    self._totals[(namespace, counter)] -= amount  # drain counts it again
            minutes = sorted({m for m, _, _ in self._pending})
            if len(minutes) > MAX_PENDING_MINUTES:
                cutoff = minutes[-MAX_PENDING_MINUTES]
                for k in [k for k in self._pending if k[0] < cutoff]:
                    self._totals[(k[1], k[2])] += self._pending.pop(k)  # counted, never written

    def discard(self, deltas: Deltas) -> None:
        """Give up deltas whose write may or may not have landed (a reply that timed out)."""
        with self._lock:
            self.dropped += sum(amount for table in deltas.values()
                                for (_, counter), amount in table.items() if counter != "load_us")

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)
