"""The application library: ``Cache`` (threads) and ``AsyncCache`` (asyncio), run by the policy.

    from cachectl import Cache

    with Cache.from_policy("cachectl.yaml") as cache:
        product = cache.get_or_load("product", lambda: db.product(7), id=7)

See docs/library.md for the states, the fail-safe, the counters and the protocol other
languages follow.
"""

from cachectl.cache.aio import AsyncCache
from cachectl.cache.breaker import BreakerState, CircuitBreaker
from cachectl.cache.core import CacheOptions, JsonSerializer, Serializer
from cachectl.cache.sync import Cache
from cachectl.errors import KeyParamError, LoadTimeoutError, ValueTooLargeError

__all__ = [
    "AsyncCache",
    "BreakerState",
    "Cache",
    "CacheOptions",
    "CircuitBreaker",
    "JsonSerializer",
    "KeyParamError",
    "LoadTimeoutError",
    "Serializer",
    "ValueTooLargeError",
]
