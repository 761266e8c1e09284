"""cachectl warm on a real Redis Cluster: rows streamed per primary, MOVED rows retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cachectl.connection import build_settings, connect
from cachectl.freshness import ttl_bounds_ms
from cachectl.policy import load_policy
from cachectl.warm import core, warm_namespaces
from tests.support.cluster import RedisClusterFixture

REPO = Path(__file__).resolve().parents[2]




def _client(cluster: RedisClusterFixture) -> Any:
    return connect(build_settings(url_flag=cluster.url, env={}, cluster=True))


def _keys(cluster: RedisClusterFixture) -> dict[bytes, int]:
    found: dict[bytes, int] = {}
    for node in cluster.primary_servers():
        client = node.client()
        for key in client.scan_iter(count=1000):
            found[key] = client.pttl(key)
    return found


def test_warm_spreads_rows_over_every_primary(clean_cluster: RedisClusterFixture) -> None:
    policy = load_policy(REPO / "policies" / "ecommerce.yaml", env={})
    client = _client(clean_cluster)
    report = warm_namespaces(client, policy, ["product", "price"])
    assert report.ok and report.written == 6000
    keys = _keys(clean_cluster)
    assert len(keys) == 6000
    low, high = ttl_bounds_ms(policy.namespace("product"))
    assert all(low - 60_000 <= pttl <= high for key, pttl in keys.items()
               if key.startswith(b"shop:product:"))
    per_node = [node.client().dbsize() for node in clean_cluster.primary_servers()]
    assert len(per_node) == 3 and all(n > 1000 for n in per_node)


def test_rows_sent_to_the_wrong_node_are_retried_through_the_cluster_client(
        clean_cluster: RedisClusterFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_policy(REPO / "policies" / "ecommerce.yaml", env={})
    client = _client(clean_cluster)
    real_route = core._Writer.route

    def wrong_node(self: Any, key: bytes) -> Any:
        # a stale slot map: every key goes to the primary after its owner
        real_route(self, key)
        names = sorted(self._lanes)
        owner = self._slot_lane[client.keyslot(key)]
        for name in names:
            if self._lanes[name] is not owner:
                return self._lanes[name]
        return owner

    monkeypatch.setattr(core._Writer, "route", wrong_node)
    retried: list[bytes] = []
    real_set = client.set

    def counting_set(key: bytes, *args: Any, **kwargs: Any) -> Any:
        retried.append(key)
        return real_set(key, *args, **kwargs)

    monkeypatch.setattr(client, "set", counting_set)
    report = warm_namespaces(client, policy, ["price"], only_missing=True)
    ns = report.namespaces[0]
    assert report.ok and (ns.written, ns.skipped, ns.failed) == (3000, 0, 0)
    assert len(_keys(clean_cluster)) == 3000
    assert len(retried) > 2000  # the MOVED replies were followed, row by row
    again = warm_namespaces(client, policy, ["price"], only_missing=True).namespaces[0]
    assert (again.written, again.skipped) == (0, 3000)
