"""The results of a verify: per namespace, what was checked and how it compared with the
source; estimates with their 95 % interval; the keys a fix would rewrite or remove."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

KINDS = ("different", "missing", "unparseable")  # how a cached value can be wrong
BANDS = ("fresh", "stale", "fail_safe", "no_ttl")


ALPHA = 0.05  # a 95 % interval


@dataclass(frozen=True)
class Estimate:
    """A share of a namespace's keys: the observed ratio and its 95 % interval.

    The exact interval for sampling without replacement (hypergeometric, the finite
    population's Clopper-Pearson): every count K of bad keys among the namespace's N that
    makes the observed count at least 2.5 % likely on its side. Its coverage is at least
    95 % by construction, where normal approximations dip below it for the rare events
    verify looks for; checking every key leaves no margin at all."""

    ratio: float
    low: float
    high: float

    @classmethod
    def of(cls, hits: int, checked: int, population: int) -> Estimate:
        if checked <= 0:
            return cls(0.0, 0.0, 1.0)
        n, k, big_n = checked, hits, max(population, checked)
        p = k / n
        if big_n == n:
            return cls(p, p, p)
        tail = ALPHA / 2
        # the largest K with P(X <= k | K) > tail: that probability falls as K grows
        lo_k, hi_k = k, big_n - (n - k)
        while lo_k < hi_k:
            mid = (lo_k + hi_k + 1) // 2
            if _cdf_at_most(k, mid, big_n, n) > tail:
                lo_k = mid
            else:
                hi_k = mid - 1
        high = lo_k
        # the smallest K with P(X >= k | K) > tail: that probability rises with K
        lo_k, hi_k = k, high
        while lo_k < hi_k and k > 0:
            mid = (lo_k + hi_k) // 2
            if _cdf_at_least(k, mid, big_n, n) > tail:
                hi_k = mid
            else:
                lo_k = mid + 1
        low = 0 if k == 0 else lo_k
        return cls(p, low / big_n, high / big_n)

    @property
    def margin(self) -> float:
        """The interval's larger half-width (it is not symmetric near 0 and 1)."""
        return max(self.ratio - self.low, self.high - self.ratio)

    def to_json(self) -> dict[str, float]:
        return {"ratio": round(self.ratio, 6), "low": round(self.low, 6),
                "high": round(self.high, 6), "margin": round(self.margin, 6)}


def _log_pmf(x: int, bad: int, population: int, n: int) -> float:
    """log P(X = x): x bad keys in a sample of n from a population holding ``bad``."""
    lg = math.lgamma
    return (lg(bad + 1) - lg(x + 1) - lg(bad - x + 1)
            + lg(population - bad + 1) - lg(n - x + 1) - lg(population - bad - n + x + 1)
            - lg(population + 1) + lg(n + 1) + lg(population - n + 1))


def _cdf_at_most(k: int, bad: int, population: int, n: int) -> float:
    first = max(0, n - (population - bad))
    return math.fsum(math.exp(_log_pmf(x, bad, population, n))
                     for x in range(first, min(k, bad) + 1))


def _cdf_at_least(k: int, bad: int, population: int, n: int) -> float:
    last = min(n, bad)
    return math.fsum(math.exp(_log_pmf(x, bad, population, n))
                     for x in range(max(k, n - (population - bad)), last + 1))


@dataclass(frozen=True)
class Difference:
    """One key whose cached value is not what its source row renders to."""

    key: str
    kind: str  # different | missing | unparseable
    band: str  # fresh | stale | fail_safe | no_ttl, by the freshness rule
    diff: tuple[str, ...] = ()  # "price: 89.9 -> 79.9"; private fields without values

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "band": self.band, "diff": list(self.diff)}


@dataclass(frozen=True)
class Repair:
    """What a fix does to one key: SET ``stored`` (as warm would), or UNLINK when None."""

    key: bytes
    stored: bytes | None


@dataclass(frozen=True)
class NamespaceVerify:
    """One namespace compared with its source."""

    namespace: str
    source: str  # the source's description (no secrets)
    access: str  # lookup | indexed | read in full
    keys: int  # live keys of the namespace
    checked: int  # keys compared (all of them, or the sample)
    identical: int
    counts: dict[str, dict[str, int]]  # kind -> band -> keys
    not_cached: int | None = None  # source rows with no live key (known when read in full)
    limit: float | None = None  # the policy's max_inconsistency for it (None: not judged)
    examples: tuple[Difference, ...] = ()
    repairs: tuple[Repair, ...] = field(default=(), repr=False, compare=False)

    @property
    def sampled(self) -> bool:
        return self.checked < self.keys

    def count(self, kind: str) -> int:
        return sum(self.counts.get(kind, {}).values())

    @property
    def inconsistent_fresh(self) -> int:
        """Keys served as fresh while they differ from (or are gone from) the source."""
        return sum(self.counts.get(kind, {}).get(band, 0)
                   for kind in KINDS for band in ("fresh", "no_ttl"))

    def estimate(self, kind: str) -> Estimate:
        hits = self.inconsistent_fresh if kind == "inconsistent" else self.count(kind)
        return Estimate.of(hits, self.checked, self.keys)

    @property
    def exceeded(self) -> bool:
        """The inconsistency (fresh keys that differ) is above the policy's limit."""
        return self.limit is not None and self.checked > 0 and \
            self.inconsistent_fresh / self.checked > self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace, "source": self.source, "access": self.access,
            "keys": self.keys, "checked": self.checked, "sampled": self.sampled,
            "identical": self.identical,
            **{kind: self.count(kind) for kind in KINDS},
            "by_band": {kind: dict(self.counts.get(kind, {})) for kind in KINDS},
            "inconsistent_fresh": self.inconsistent_fresh,
            "not_cached": self.not_cached,
            "ratios": {kind: self.estimate(kind).to_json()
                       for kind in (*KINDS, "inconsistent")},
            "max_inconsistency": self.limit, "exceeded": self.exceeded,
            "examples": [d.to_json() for d in self.examples],
        }


@dataclass(frozen=True)
class FixResult:
    """What ``--fix`` did: keys rewritten from their source row, keys removed."""

    rewritten: int = 0
    removed: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"rewritten": self.rewritten, "removed": self.removed,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class VerifyReport:
    """Every namespace verified, in order; ``fixed`` when a fix ran."""

    namespaces: tuple[NamespaceVerify, ...]
    seed: int
    fixed: FixResult | None = None
    record_error: str | None = None  # the result could not be recorded (an ACL refusal)

    @property
    def exceeded(self) -> tuple[NamespaceVerify, ...]:
        return tuple(n for n in self.namespaces if n.exceeded)

    @property
    def repairs(self) -> int:
        return sum(len(n.repairs) for n in self.namespaces)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "ok": not self.exceeded,
                "namespaces": [n.to_json() for n in self.namespaces],
                "fixed": self.fixed.to_json() if self.fixed else None,
                "record_error": self.record_error}
