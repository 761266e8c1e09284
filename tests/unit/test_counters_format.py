"""The counter format: buckets written by the library read back by stats, whatever the reply shape."""

from __future__ import annotations

from typing import Any

import fakeredis

from cachectl import counter_format


def test_written_buckets_read_back_per_namespace() -> None:
    client = fakeredis.FakeRedis()
    pipe = client.pipeline(transaction=False)
    counter_format.write_buckets(pipe, "shop:cachectl", {
        100: {("product", "fresh_hits"): 7, ("product", "misses"): 3},
        101: {("product", "stale_hits"): 2, ("price", "loads"): 1, ("price", "load_us"): 5000},
    })
    pipe.execute()
    ttl = client.ttl(counter_format.bucket_key("shop:cachectl", 100))
    assert 0 < ttl <= counter_format.COUNTER_RETENTION_S
    totals = counter_format.read_window(client, "shop:cachectl", [99, 100, 101])
    assert totals["product"].as_dict()["fresh_hits"] == 7
    assert totals["product"].hits == 9 and totals["product"].requests == 12
    assert totals["product"].stale_ratio == 2 / 9
    assert totals["price"].mean_load_ms == 5.0
    assert counter_format.read_window(client, "shop:cachectl", [102]) == {}


class _FlatReplies:
    """A client whose HGETALL answers a flat [field, value, ...] list (RESP3 proxies, fakeredis TCP)."""

    def pipeline(self, transaction: bool = False) -> Any:
        return self

    def hgetall(self, key: str) -> None:
        pass

    def execute(self) -> list[list[bytes]]:
        return [[b"product|fresh_hits", b"4", b"product|misses", b"1", b"odd-field", b"9"]]


def test_flat_list_replies_are_read_too() -> None:
    totals = counter_format.read_window(_FlatReplies(), "shop:cachectl", [1])
    assert totals["product"].hits == 4 and totals["product"].misses == 1
    assert list(totals) == ["product"]


def test_the_running_totals_sum_every_minute_and_keep_a_ttl() -> None:
    client = fakeredis.FakeRedis()
    for deltas in ({100: {("product", "misses"): 3}, 101: {("product", "misses"): 2}},
                   {102: {("product", "misses"): 1, ("price", "loads"): 4}}):
        pipe = client.pipeline(transaction=False)
        counter_format.write_buckets(pipe, "shop:cachectl", deltas)
        pipe.execute()
    key = counter_format.totals_key("shop:cachectl")
    assert 0 < client.ttl(key) <= counter_format.COUNTER_RETENTION_S
    window, totals = counter_format.read_counters(client, "shop:cachectl", [101])
    assert window.namespaces["product"].misses == 2
    assert totals.namespaces["product"].misses == 6 and totals.namespaces["price"].loads == 4
    assert window.skipped_fields == totals.skipped_fields == 0


def test_malformed_fields_are_skipped_and_counted() -> None:
    read = counter_format.sum_hashes([{b"product|misses": b"2", b"product|fresh_hits": b"1.5",
                                 b"\xff\xfe|misses": b"4", b"price|loads": b"x",
                                 b"product|unknown_counter": b"9"}])
    assert read.namespaces["product"].misses == 2 and read.namespaces["product"].fresh_hits == 0
    assert read.skipped_fields == 3  # 1.5, the non-UTF-8 name and x; an unknown counter is ignored


def test_trace_drops_are_read_back_for_the_traces_span_only() -> None:
    from types import SimpleNamespace

    from cachectl.model.stream import dropped_events

    client = fakeredis.FakeRedis()
    pipe = client.pipeline(transaction=False)
    counter_format.write_buckets(pipe, "shop:cachectl", {
        99: {("product", "trace_dropped"): 50},  # before the trace's first event: not counted
        100: {("product", "trace_dropped"): 3, ("price", "misses"): 1},
        105: {("product", "trace_dropped"): 4, ("price", "trace_dropped"): 2},
        106: {("price", "trace_dropped"): 1},  # a writer's clock a minute ahead
    })
    pipe.execute()
    policy: Any = SimpleNamespace(internal_prefix="shop:cachectl")
    assert dropped_events(client, policy, since_s=100 * 60 + 30, now_s=105 * 60 + 1) == {
        "price": 3, "product": 7}
    assert dropped_events(client, policy, since_s=107 * 60, now_s=107 * 60 + 1) == {}
    # at most the counters' retention back, however old the trace's first event
    far = (100 + counter_format.COUNTER_RETENTION_S // 60) * 60
    assert dropped_events(client, policy, since_s=0, now_s=far) == {"price": 3, "product": 4}
