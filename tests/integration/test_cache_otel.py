"""The otel extra: a real Cache on a real server reports its per-namespace counters through the
OpenTelemetry metrics API, collected by the SDK's in-memory reader: the same figures as the
cache's own counters, the namespace as an attribute, and no key or parameter in any attribute.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from cachectl import AsyncCache, Cache
from cachectl.policy import load_policy
from tests.support.cache import PATIENT
from tests.support.redis_server import RedisServer

pytest.importorskip("opentelemetry.sdk", reason="the test extra brings opentelemetry-sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from cachectl.cache.otel import instrument

POLICY = """\
version: 1
redis: {key_prefix: otel}
defaults: {ttl: 10m}
namespaces:
  product: {key: "product:{id}"}
  price:   {key: "price:{sku}"}
"""


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    data = reader.get_metrics_data()
    out: dict[str, list[tuple[dict[str, Any], float]]] = {}
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "cachectl"
            for metric in scope.metrics:
                assert metric.data.is_monotonic
                out[metric.name] = [(dict(p.attributes or {}), p.value)
                                    for p in metric.data.data_points]
    return out


def test_the_cache_counters_are_reported_through_opentelemetry(redis_server: RedisServer,
                                                               tmp_path: Any) -> None:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    cache = Cache.from_policy(load_policy(path, env={}), redis_server.url, **PATIENT)
    try:
        instrument(cache, provider)
        for i in range(30):
            cache.get_or_load("product", lambda: {"name": "secret-product-name"}, id=f"sku-{i % 10}")
        cache.get_or_load("price", lambda: 3, sku="A-1")
        points = _points(reader)
        requests = {(a["cache.namespace"], a["outcome"]): v for a, v in points["cachectl.cache.requests"]}
        assert requests[("product", "fresh")] == 20 and requests[("product", "miss")] == 10
        assert requests[("price", "miss")] == 1 and requests[("price", "stale")] == 0
        loads = {a["cache.namespace"]: v for a, v in points["cachectl.cache.loads"]}
        assert loads == {"price": 1, "product": 10}
        assert all(v >= 0 for _, v in points["cachectl.cache.load.time"])
        local = cache.local_counters()
        assert requests[("product", "fresh")] == local["product"].fresh_hits
        # attributes name the namespace and the outcome, never a key, a parameter or a value
        for series in points.values():
            for attributes, _ in series:
                assert set(attributes) <= {"cache.namespace", "outcome"}
                assert not any("sku-" in str(v) or "otel:" in str(v) for v in attributes.values())
        # counters: a later collection never goes down
        cache.get_or_load("product", lambda: {}, id="sku-1")
        again = {(a["cache.namespace"], a["outcome"]): v
                 for a, v in _points(reader)["cachectl.cache.requests"]}
        assert again[("product", "fresh")] == 21
    finally:
        cache.close()
    del cache
    gc.collect()
    assert not any(_points(reader).values())  # held weakly: a cache that is gone reports nothing
    provider.shutdown()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_async_cache_reports_too(redis_server: RedisServer, tmp_path: Any) -> None:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    cache = AsyncCache.from_policy(load_policy(path, env={}), redis_server.url, **PATIENT)
    try:
        instrument(cache, provider)
        for _ in range(3):
            await cache.get_or_load("price", lambda: 3, sku="B-2")
        requests = {(a["cache.namespace"], a["outcome"]): v
                    for a, v in _points(reader)["cachectl.cache.requests"]}
        assert requests[("price", "miss")] == 1 and requests[("price", "fresh")] == 2
    finally:
        await cache.close()
        provider.shutdown()
