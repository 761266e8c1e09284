"""RateLimiter: a token bucket that threads may share (a cluster's primaries worked at once)."""

from __future__ import annotations

import threading
import time

from cachectl.pacing import RateLimiter


def test_threads_sharing_a_limiter_get_the_rate_between_them() -> None:
    limiter = RateLimiter(8000)
    start = time.monotonic()

    def take() -> None:
        for _ in range(10):
            limiter.wait(100)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 4,000 units at 8,000/s from an empty bucket: half a second at least, together
    assert time.monotonic() - start >= 0.49


def test_no_rate_never_waits() -> None:
    slept: list[float] = []
    limiter = RateLimiter(None, sleep=slept.append)
    assert limiter.wait(10**9) == 0.0 and slept == []
