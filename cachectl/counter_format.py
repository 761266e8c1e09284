"""The counter format shared by the library (writer) and ``cachectl stats`` (reader).

Format version 1. Per minute, one Redis hash:

    key    <internal_prefix>:counters:v1:<epoch_minute>      e.g. shop:cachectl:counters:v1:29876543
    field  <namespace>|<counter>                             e.g. product|fresh_hits
    value  an integer added with HINCRBY
    TTL    COUNTER_RETENTION_S (3 days) from the bucket's last write

Beside the buckets, one running total over every minute (what Prometheus needs: a
counter that only grows, so ``rate()`` works over any window):

    key    <internal_prefix>:counters:v1:total               same fields and values
    TTL    COUNTER_RETENTION_S from its last write (idle 3 days: it starts again at 0,
           which Prometheus reads as a counter reset)

Counters (integers): fresh_hits, stale_hits, fail_safe_hits, misses, refreshes,
refresh_errors, redis_errors, loads, load_us (total load time, microseconds),
early_refreshes, previous_hits (misses answered from the namespace's version N-1,
migrated, instead of the origin: a subset of misses), trace_dropped (access-trace events of
the namespace the library dropped: its buffer was full or their write failed). A reader sums the buckets of a
window; unknown fields are ignored, so later versions may add counters without breaking
older readers. A field whose name is not UTF-8 or whose value is not an integer (written by something else) is
skipped and counted, never fatal: one bad field must not hide every namespace's figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

FORMAT_VERSION = 1
COUNTER_RETENTION_S = 3 * 24 * 3600
COUNTER_NAMES = (
    "fresh_hits", "stale_hits", "fail_safe_hits", "misses", "refreshes",
    "refresh_errors", "redis_errors", "loads", "load_us", "early_refreshes", "previous_hits",
    "trace_dropped",
)


def bucket_key(internal_prefix: str, epoch_minute: int) -> str:
    """The hash holding one minute's counters."""
    return f"{internal_prefix}:counters:v{FORMAT_VERSION}:{epoch_minute}"


def totals_key(internal_prefix: str) -> str:
    """The hash holding the running totals (every minute summed)."""
    return f"{internal_prefix}:counters:v{FORMAT_VERSION}:total"


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
    previous_hits: int = 0
    trace_dropped: int = 0

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
    """Queue HINCRBY + EXPIRE for ``{minute: {(namespace, counter): amount}}`` on a pipeline.

    The running totals get the same amounts, summed over the minutes.
    """
    totals: dict[tuple[str, str], int] = {}
    for minute, table in deltas.items():
        key = bucket_key(internal_prefix, minute)
        for (namespace, counter), amount in table.items():
            if amount:
                pipe.hincrby(key, field_name(namespace, counter), amount)
                totals[(namespace, counter)] = totals.get((namespace, counter), 0) + amount
        pipe.expire(key, COUNTER_RETENTION_S)
    if totals:
        key = totals_key(internal_prefix)
        for (namespace, counter), amount in totals.items():
            pipe.hincrby(key, field_name(namespace, counter), amount)
        pipe.expire(key, COUNTER_RETENTION_S)


@dataclass
class CounterRead:
    """Counters per namespace, and how many fields were skipped as malformed."""

    namespaces: dict[str, NamespaceCounters]
    skipped_fields: int = 0


def _pairs(reply: Any) -> Iterable[tuple[Any, Any]]:
    # a dict from redis-py; some servers (RESP3 proxies, fakeredis) answer a flat list
    return reply.items() if isinstance(reply, dict) else zip(reply[0::2], reply[1::2], strict=True)


def sum_hashes(replies: Iterable[Any]) -> CounterRead:
    """Sum HGETALL replies per namespace; a non-UTF-8 name or non-integer value is skipped."""
    read = CounterRead({})
    known = set(COUNTER_NAMES)
    for reply in replies:
        for raw_field, raw_value in _pairs(reply):
            try:
                text = raw_field.decode() if isinstance(raw_field, bytes) else str(raw_field)
                value = int(raw_value)  # b"1.5", b"x" -> ValueError; int(b"12") works
            except (UnicodeDecodeError, ValueError):
                read.skipped_fields += 1
                continue
            namespace, _, counter = text.rpartition("|")
            if counter in known and namespace:
                read.namespaces.setdefault(namespace, NamespaceCounters()).add(counter, value)
    return read


def read_counters(client: Any, internal_prefix: str,
                  minutes: Iterable[int]) -> tuple[CounterRead, CounterRead]:
    """The window's sum over ``minutes`` and the running totals, in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    wanted = list(minutes)
    for minute in wanted:
        pipe.hgetall(bucket_key(internal_prefix, minute))
    pipe.hgetall(totals_key(internal_prefix))
    replies = pipe.execute()
    return sum_hashes(replies[:-1]), sum_hashes(replies[-1:])


def read_window(client: Any, internal_prefix: str,
                minutes: Iterable[int]) -> dict[str, NamespaceCounters]:
    """Sum the counters of ``minutes`` per namespace (one pipelined HGETALL per bucket)."""
    pipe = client.pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(bucket_key(internal_prefix, minute))
    return sum_hashes(pipe.execute()).namespaces
