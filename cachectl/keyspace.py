"""The keyspace: which namespace a key belongs to, and streaming SCAN over every primary.

Keys are bytes end to end (they may hold any bytes, including non-UTF-8). A key is
attributed to exactly one namespace: the first, in policy order, whose exact
matcher accepts it; SCAN's MATCH glob only narrows the search.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from cachectl.connection import primaries
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Namespace, Policy

DEFAULT_SCAN_COUNT = 1000


class NamespaceMatcher:
    """Attributes keys to namespaces with one compiled alternation."""

    def __init__(self, namespaces: Iterable[Namespace]) -> None:
        self.namespaces: tuple[Namespace, ...] = tuple(namespaces)
        self._by_group: dict[str, Namespace] = {}
        parts = []
        for i, ns in enumerate(self.namespaces):
            group = f"n{i}"
            self._by_group[group] = ns
            body = re.sub(rb"\(\?P<[A-Za-z_][A-Za-z0-9_]*>", b"(?:", ns.template.regex.pattern)
            parts.append(b"(?P<" + group.encode() + b">" + body + b")")
        self._regex = re.compile(b"|".join(parts), re.DOTALL) if parts else None

    @classmethod
    def from_policy(cls, policy: Policy) -> NamespaceMatcher:
        return cls(policy.namespaces.values())

    def namespace_of(self, key: bytes) -> Namespace | None:
        """The namespace owning ``key``, or None."""
        if self._regex is None:
            return None
        m = self._regex.fullmatch(key)
        if m is None or m.lastgroup is None:
            return None
        return self._by_group[m.lastgroup]


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
    regex = ns.template.regex
    for node, keys in scan_keys(client, ns.template.glob, count=count, limiter=limiter):
        kept = [k for k in keys if regex.fullmatch(k)]
        if kept:
            yield node, kept
