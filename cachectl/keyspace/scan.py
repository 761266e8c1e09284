"""Streaming SCAN over every primary, and batched per-key facts (one round trip a batch)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis.exceptions as rex

from cachectl.connection import node_name, primaries
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Namespace

DEFAULT_SCAN_COUNT = 1000


def scan_keys(
    client: Any,
    match: str | bytes | None = None,
    *,
    count: int = DEFAULT_SCAN_COUNT,
    limiter: RateLimiter | None = None,
    scan_type: str | None = None,
) -> Iterator[tuple[Any, list[bytes]]]:
    """Yield ``(node_client, keys)`` batches from a SCAN of every primary.

    A key may appear twice if the keyspace is rehashed during the scan (SCAN's own
    guarantee); callers that count must tolerate that or deduplicate per batch.
    """
    for node in primaries(client):
        cursor = 0
        while True:
            cursor, keys = node.scan(cursor=cursor, match=match, count=count, _type=scan_type)
            if keys:
                if limiter is not None:
                    limiter.wait(len(keys))
                yield node, keys
            if cursor == 0:
                break


def scan_namespace(
    client: Any,
    ns: Namespace,
    *,
    count: int = DEFAULT_SCAN_COUNT,
    limiter: RateLimiter | None = None,
) -> Iterator[tuple[Any, list[bytes]]]:
    """Yield ``(node_client, keys)`` batches of keys that belong to ``ns`` exactly.

    The glob narrows the scan; the exact matcher drops keys of other namespaces that
    share a prefix (``product:reviews:7`` when scanning ``product:{id}``).
    """
    for node, keys in scan_keys(client, ns.template.glob, count=count, limiter=limiter):
        kept = namespace_keys(ns, keys)
        if kept:
            yield node, kept


def namespace_keys(ns: Namespace, keys: Iterable[bytes]) -> list[bytes]:
    """The keys of a SCAN of ``ns.template.glob`` that belong to ``ns`` exactly."""
    regex = ns.template.regex
    return [k for k in keys if regex.fullmatch(k)]


# --------------------------------------------------------------------------- per-key facts


@dataclass(frozen=True)
class KeyFacts:
    """What the server says about one key. ``pttl_ms``: -1 no expiry, -2 gone.

    ``memory_bytes`` is MEMORY USAGE (default sampling); ``idle_s`` is None when the
    server runs an LFU policy (OBJECT IDLETIME is refused then) or the key is gone.
    """

    key: bytes
    type: str
    pttl_ms: int
    memory_bytes: int | None
    encoding: str | None
    idle_s: int | None
    node: str

    @property
    def exists(self) -> bool:
        return self.type != "none" and self.pttl_ms != -2


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def key_facts(node_client: Any, keys: Sequence[bytes]) -> list[KeyFacts]:
    """Facts of ``keys`` on one node in one pipelined round trip (no LRU touch).

    A key that vanished meanwhile comes back with type ``none`` and PTTL -2; a
    per-key error (an ACL denying the key) leaves that fact None. Connection errors
    propagate (callers wrap them with ``redis_errors``).
    """
    if not keys:
        return []
    pipe = node_client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.pttl(key)
        pipe.memory_usage(key)
        pipe.object("encoding", key)
        pipe.object("idletime", key)
    replies = pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, rex.ConnectionError | rex.TimeoutError):
            raise reply
    name = node_name(node_client)
    out = []
    for i, key in enumerate(keys):
        typ, pttl, mem, enc, idle = replies[5 * i:5 * i + 5]
        type_text = _text(typ) or "none"
        pttl_ms = _int(pttl)
        out.append(KeyFacts(
            key=key, type=type_text, pttl_ms=-2 if pttl_ms is None else pttl_ms,
            memory_bytes=_int(mem), encoding=_text(enc), idle_s=_int(idle), node=name))
    return out


def scan_facts(
    client: Any,
    match: str | None = None,
    *,
    keep: Callable[[bytes], bool] | None = None,
    count: int = DEFAULT_SCAN_COUNT,
    limiter: RateLimiter | None = None,
) -> Iterator[list[KeyFacts]]:
    """Yield batches of facts for the keys SCAN finds (``keep`` filters keys first).

    Keys that expire between SCAN and the facts are dropped.
    """
    for node, keys in scan_keys(client, match, count=count, limiter=limiter):
        kept = [k for k in keys if keep is None or keep(k)]
        facts = [f for f in key_facts(node, kept) if f.exists]
        if facts:
            yield facts
