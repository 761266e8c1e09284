"""cachectl: the operator toolkit and client library for Redis caches run by policy.

Public API (heavy modules are imported on first use)::

    from cachectl import Cache, AsyncCache, load_policy, Policy

Every exception cachectl raises on purpose is a ``CachectlError`` (the tree is drawn in
cachectl/errors.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AsyncCache",
    "Cache",
    "CacheOptions",
    "CachectlError",
    "ExitCode",
    "InterruptedWork",
    "KeyParamError",
    "LoadTimeoutError",
    "Policy",
    "PolicyError",
    "RedisUnavailableError",
    "SourceError",
    "SourceUnavailableError",
    "UsageError",
    "ValueTooLargeError",
    "__version__",
    "load_policy",
]

if TYPE_CHECKING:
    from cachectl.cache import AsyncCache, Cache, CacheOptions
    from cachectl.errors import (
        CachectlError,
        ExitCode,
        InterruptedWork,
        KeyParamError,
        LoadTimeoutError,
        PolicyError,
        RedisUnavailableError,
        SourceError,
        SourceUnavailableError,
        UsageError,
        ValueTooLargeError,
    )
    from cachectl.policy import Policy, load_policy

# name -> the module that defines it, imported on first access (``import cachectl`` stays cheap)
_LAZY = {
    "Cache": "cachectl.cache",
    "AsyncCache": "cachectl.cache",
    "CacheOptions": "cachectl.cache",
    "load_policy": "cachectl.policy",
    "Policy": "cachectl.policy",
    **{name: "cachectl.errors" for name in (
        "CachectlError", "ExitCode", "InterruptedWork", "KeyParamError", "LoadTimeoutError",
        "PolicyError", "RedisUnavailableError", "SourceError", "SourceUnavailableError",
        "UsageError",
        "ValueTooLargeError")},
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cachectl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
