"""The freshness rule: a key's state is decoded from its PTTL and its namespace (docs/design.md).

    grace G = max(stale, stale_if_error); a write sets PTTL = ttl·(1 ± jitter) + G
    fresh      PTTL > G
    stale      G − stale < PTTL <= G      served, and revalidated by one caller
    fail-safe  0 < PTTL <= G − stale      served only when reloading fails
    gone       the key does not exist
"""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Protocol


class _Timing(Protocol):
    # read-only members, so a frozen Namespace satisfies the protocol under mypy strict
    @property
    def ttl_ms(self) -> int: ...
    @property
    def stale_ms(self) -> int: ...
    @property
    def jitter(self) -> float: ...
    @property
    def grace_ms(self) -> int: ...


class Freshness(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    FAIL_SAFE = "fail_safe"
    GONE = "gone"
    NO_TTL = "no_ttl"  # a key without expiry: never written by cachectl, an audit finding


def classify(pttl_ms: int, ns: _Timing) -> Freshness:
    """The state of a key whose PTTL is ``pttl_ms`` (-2: missing, -1: no expiry)."""
    if pttl_ms == -2:
        return Freshness.GONE
    if pttl_ms < 0:
        return Freshness.NO_TTL
    grace = ns.grace_ms
    if pttl_ms > grace:
        return Freshness.FRESH
    if pttl_ms > grace - ns.stale_ms:
        return Freshness.STALE
    return Freshness.FAIL_SAFE if pttl_ms > 0 else Freshness.GONE


def write_ttl_ms(ns: _Timing, rng: random.Random | None = None) -> int:
    """The PTTL to write a value with: ttl·(1 ± jitter) + grace, always >= 1 ms.

    Uniform over the whole milliseconds of ``ttl_bounds_ms``, drawn from one 32-bit word of
    ``rng``: warm draws a chunk's words at once (``rng.randbytes``) and gets the same TTLs.
    """
    low, high = ttl_bounds_ms(ns)
    if low == high:
        return low
    return low + ((rng or random).getrandbits(32) * (high - low + 1) >> 32)


def ttl_bounds_ms(ns: _Timing) -> tuple[int, int]:
    """The lowest and highest PTTL a write under this policy can set."""
    low = max(1, round(ns.ttl_ms * (1 - ns.jitter)) + ns.grace_ms)
    return low, round(ns.ttl_ms * (1 + ns.jitter)) + ns.grace_ms


def fresh_remaining_ms(pttl_ms: int, ns: _Timing) -> int:
    """How long until a key stops being fresh (negative: it already is not)."""
    return pttl_ms - ns.grace_ms


def soft_expire_pttl_ms(ns: _Timing) -> int:
    """The PTTL a soft flush sets: the top of the stale band, so the next read revalidates."""
    return ns.grace_ms
