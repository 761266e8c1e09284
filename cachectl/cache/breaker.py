"""A circuit breaker for Redis: open after N consecutive failures, half-open probe, close.

    closed     every call goes to Redis; a failure counts, a success resets the count
    open       no call goes to Redis for ``reset_s`` (callers use the loader and the
               in-process fallback store at once, instead of each waiting for a timeout)
    half-open  after ``reset_s`` one caller probes Redis; success closes the breaker,
               failure opens it for another ``reset_s``

Thread-safe; the asyncio cache uses it too (the critical sections never block).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float]) -> None:
        self.threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.on_change: Callable[[BreakerState], None] | None = None

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        return BreakerState.HALF_OPEN if self._probing else BreakerState.OPEN

    def allow(self) -> bool:
        """May this call use Redis? (While open, only one caller at a time probes.)"""
        if self._opened_at is None:  # the fast path takes no lock
            return True
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or self._clock() - self._opened_at < self.reset_s:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        if self._failures == 0 and self._opened_at is None:
            return
        with self._lock:
            was_open = self._opened_at is not None
            self._failures = 0
            self._opened_at = None
            self._probing = False
        if was_open and self.on_change is not None:
            self.on_change(BreakerState.CLOSED)

    def failure(self) -> None:
        opened = False
        with self._lock:
            self._failures += 1
            if self._probing or (self._opened_at is None and self._failures >= self.threshold):
                opened = self._opened_at is None
                self._opened_at = self._clock()
                self._probing = False
        if opened and self.on_change is not None:
            self.on_change(BreakerState.OPEN)
