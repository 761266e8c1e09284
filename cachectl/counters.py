"""The counter format shared by the library (writer) and ``cachectl stats`` (reader).

Format version 1. Per minute, one Redis hash:

    key    <internal_prefix>:counters:v1:<epoch_minute>      e.g. shop:cachectl:counters:v1:29876543
    field  <namespace>|<counter>                             e.g. product|fresh_hits
    value  an integer added with HINCRBY
    TTL    COUNTER_RETENTION_S (3 days) from the bucket's last write

Counters (integers): fresh_hits, stale_hits, fail_safe_hits, misses, refreshes,
refresh_errors, redis_errors, loads, load_us (total load time, microseconds),
early_refreshes. A reader sums the buckets of a window; unknown fields are ignored,
so later versions may add counters without breaking older readers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

FORMAT_VERSION = 1
COUNTER_RETENTION_S = 3 * 24 * 3600
COUNTER_NAMES = (
    "fresh_hits", "stale_hits", "fail_safe_hits", "misses", "refreshes",
    "refresh_errors", "redis_errors", "loads", "load_us", "early_refreshes",
)


def bucket_key(internal_prefix: str, epoch_minute: int) -> str:
    """The hash holding one minute's counters."""
    return f"{internal_prefix}:counters:v{FORMAT_VERSION}:{epoch_minute}"


def field_name(namespace: str, counter: str) -> str:
    return f"{namespace}|{counter}"


@dataclass
class NamespaceCounters:
    """One namespace's counters summed over a window."""

    fresh_hits: int = 0
    stale_hits: int = 0
    fail_safe_hits: int = 0
    misses: int = 0
    refreshes: int = 0
    refresh_errors: int = 0
    redis_errors: int = 0
    loads: int = 0
    load_us: int = 0
    early_refreshes: int = 0

    @property
    def hits(self) -> int:
        return self.fresh_hits + self.stale_hits + self.fail_safe_hits

    @property
    def requests(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.requests if self.requests else None

    @property
    def stale_ratio(self) -> float | None:
        """Share of hits served stale or fail-safe."""
        return (self.stale_hits + self.fail_safe_hits) / self.hits if self.hits else None

    @property
    def mean_load_ms(self) -> float | None:
        return self.load_us / self.loads / 1000 if self.loads else None

    def add(self, counter: str, amount: int) -> None:
        setattr(self, counter, getattr(self, counter) + amount)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def write_buckets(pipe: Any, internal_prefix: str,
                  deltas: Mapping[int, Mapping[tuple[str, str], int]]) -> None:
    """Queue HINCRBY + EXPIRE for ``{minute: {(namespace, counter): amount}}`` on a pipeline."""
    for minute, table in deltas.items():
        key = bucket_key(internal_prefix, minute)
        for (namespace, counter), amount in table.items():
            if amount:
                pipe.hincrby(key, field_name(namespace, counter), amount)
        pipe.expire(key, COUNTER_RETENTION_S)


def read_window(client: Any, internal_prefix: str,
                minutes: Iterable[int]) -> dict[str, NamespaceCounters]:
    """Sum the counters of ``minutes`` per namespace (one pipelined HGETALL per bucket)."""
    pipe = client.pipeline(transaction=False)
    wanted = list(minutes)
    for minute in wanted:
        pipe.hgetall(bucket_key(internal_prefix, minute))
    totals: dict[str, NamespaceCounters] = {}
    known = set(COUNTER_NAMES)
    for bucket in pipe.execute():
        # a dict from redis-py; some servers (RESP3 proxies, fakeredis) answer a flat list
        pairs = bucket.items() if isinstance(bucket, dict) else zip(
            bucket[0::2], bucket[1::2], strict=True)
        for raw_field, raw_value in pairs:
            text = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
            namespace, _, counter = text.rpartition("|")
            if counter in known and namespace:
                totals.setdefault(namespace, NamespaceCounters()).add(counter, int(raw_value))
    return totals
