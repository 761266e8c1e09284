"""cachectl: the operator toolkit and client library for Redis caches run by policy.

Public API (heavy modules are imported on first use)::

    from cachectl import Cache, AsyncCache, load_policy, Policy
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AsyncCache",
    "Cache",
    "CachectlError",
    "Policy",
    "PolicyError",
    "RedisUnavailableError",
    "__version__",
    "load_policy",
]

if TYPE_CHECKING:
    from cachectl.cache import AsyncCache, Cache  # type: ignore[import-not-found,unused-ignore]
    from cachectl.errors import CachectlError, PolicyError, RedisUnavailableError
    from cachectl.policy import Policy, load_policy

_LAZY = {
    "Cache": "cachectl.cache",
    "AsyncCache": "cachectl.cache",
    "load_policy": "cachectl.policy",
    "Policy": "cachectl.policy",
    "CachectlError": "cachectl.errors",
    "PolicyError": "cachectl.errors",
    "RedisUnavailableError": "cachectl.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cachectl' has no attribute {name!r}")
