"""Rate limiting for long work (warm, flush, scans): never more than N units per second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """A token bucket: ``wait(n)`` sleeps until n more units fit under ``rate`` per second.

    ``rate`` None or <= 0 means unlimited. The bucket holds at most one second of
    burst, so a pause never lets a flood through afterwards. Threads may share one (a
    cluster's primaries worked at once): the rate is for all of them together, and a
    thread that must wait holds the bucket while it sleeps, so the next waits its turn.
    """

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate if rate and rate > 0 else None
        self._clock = clock
        self._sleep = sleep
        self._allowance = 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def wait(self, units: int = 1) -> float:
        """Block until ``units`` may proceed; returns the seconds slept."""
        if self.rate is None or units <= 0:
            return 0.0
        with self._lock:
            return self._take(units, self.rate)

    def _take(self, units: int, rate: float) -> float:
        now = self._clock()
        self._allowance = min(rate, self._allowance + (now - self._last) * rate)
        self._last = now
        self._allowance -= units
        if self._allowance >= 0:
            return 0.0
        delay = -self._allowance / rate
        self._sleep(delay)
        self._last = self._clock()
        self._allowance = 0.0
        return delay
