"""The library's per-namespace counters through the OpenTelemetry metrics API (the ``otel`` extra).

    from cachectl.cache.otel import instrument
    instrument(cache)                      # the global MeterProvider, or meter_provider=...

For applications that already export OpenTelemetry: the counters ``Cache`` and
``AsyncCache`` keep per namespace (what ``cachectl stats`` reads from Redis) are reported
as observable counters, read from ``local_counters()`` whenever the SDK's reader collects.
Nothing is added to a cache call (no span, no instrument call per read); the namespace is
the ``cache.namespace`` attribute (``cache_namespace`` once exported to Prometheus, as
``cachectl stats`` labels it) and no key or parameter is ever an attribute.

| instrument | unit | attributes |
| --- | --- | --- |
| ``cachectl.cache.requests`` | ``{request}`` | cache.namespace, outcome (fresh, stale, fail_safe, miss) |
| ``cachectl.cache.loads`` | ``{load}`` | cache.namespace |
| ``cachectl.cache.load.time`` | ``s`` | cache.namespace |
| ``cachectl.cache.refreshes`` | ``{refresh}`` | cache.namespace |
| ``cachectl.cache.refresh.errors`` | ``{error}`` | cache.namespace |
| ``cachectl.cache.redis.errors`` | ``{error}`` | cache.namespace |
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from cachectl import __version__
from cachectl.counter_format import NamespaceCounters
from cachectl.errors import install_extra_hint

try:
    from opentelemetry import metrics
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests' bare install
    raise ImportError(f"cachectl.cache.otel needs OpenTelemetry: {install_extra_hint('otel')}") from exc

OUTCOMES = (("fresh", "fresh_hits"), ("stale", "stale_hits"), ("fail_safe", "fail_safe_hits"),
            ("miss", "misses"))


class _Counted(Protocol):
    def local_counters(self) -> dict[str, NamespaceCounters]: ...


def instrument(cache: _Counted, meter_provider: Any = None) -> list[Any]:
    """Register the observable counters for ``cache`` (a Cache or AsyncCache); returns them.

    The cache is held weakly: once it is gone, its counters report nothing.
    """
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter("cachectl", __version__)
    ref = weakref.ref(cache)

    def observe(values: Callable[[NamespaceCounters], Iterable[tuple[float, dict[str, str]]]]) -> Any:
        def callback(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            target = ref()
            if target is None:
                return []
            return [metrics.Observation(value, {"cache.namespace": namespace, **extra})
                    for namespace, counted in sorted(target.local_counters().items())
                    for value, extra in values(counted)]
        return callback

    def one(counter: str) -> Callable[[NamespaceCounters], Iterable[tuple[float, dict[str, str]]]]:
        return lambda c: [(getattr(c, counter), {})]

    return [
        meter.create_observable_counter(
            "cachectl.cache.requests", [observe(lambda c: [
                (getattr(c, field), {"outcome": outcome}) for outcome, field in OUTCOMES])],
            unit="{request}", description="Reads through the cache by outcome (fresh, stale and "
            "fail_safe are hits)."),
        meter.create_observable_counter(
            "cachectl.cache.loads", [observe(one("loads"))], unit="{load}",
            description="Loads from the origin."),
        meter.create_observable_counter(
            "cachectl.cache.load.time", [observe(lambda c: [(c.load_us / 1e6, {})])], unit="s",
            description="Time spent loading from the origin."),
        meter.create_observable_counter(
            "cachectl.cache.refreshes", [observe(one("refreshes"))], unit="{refresh}",
            description="Background refreshes of stale values."),
        meter.create_observable_counter(
            "cachectl.cache.refresh.errors", [observe(one("refresh_errors"))], unit="{error}",
            description="Loads that failed."),
        meter.create_observable_counter(
            "cachectl.cache.redis.errors", [observe(one("redis_errors"))], unit="{error}",
            description="Redis errors (the origin served instead)."),
    ]
