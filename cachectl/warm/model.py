"""The data of a warm: its targets, the counts kept while one is warmed, and the results
(frozen, plain, and turned into tables or JSON by the render layer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cachectl.freshness import ttl_bounds_ms
from cachectl.policy.model import Namespace
from cachectl.warm.sources import Source

FIRST_PROBLEMS = 20  # rejected rows kept (with locator and reason) per namespace
SAMPLE_KEYS = 5


@dataclass(frozen=True)
class RowProblem:
    """A row that was not written: rejected before writing, or refused by Redis."""

    locator: str  # products.jsonl:12, row 7, page 2 item 3
    reason: str
    key: str | None = None
    kind: str = "rejected"  # rejected | failed


@dataclass(frozen=True)
class NamespaceWarm:
    """What warming one namespace did (or, in a dry run, would do)."""

    namespace: str
    source: str
    rows: int = 0  # rows read from the source
    written: int = 0  # keys SET (would be SET, in a dry run)
    skipped: int = 0  # existing keys left alone (--only-missing)
    rejected: int = 0  # rows refused before writing: no key, too large, duplicate, unreadable
    failed: int = 0  # writes Redis refused (OOM, WRONGTYPE…)
    payload_bytes: int = 0  # key + value bytes written (would be written)
    seconds: float = 0.0
    ttl_bounds_ms: tuple[int, int] = (0, 0)
    problems: tuple[RowProblem, ...] = ()  # the first FIRST_PROBLEMS
    sample_keys: tuple[str, ...] = ()
    complete: bool = True  # False when interrupted or stopped part-way
    errors_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def keys_per_s(self) -> float:
        return (self.written + self.skipped) / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace, "source": self.source, "rows": self.rows,
            "written": self.written, "skipped": self.skipped, "rejected": self.rejected,
            "failed": self.failed, "payload_bytes": self.payload_bytes,
            "seconds": round(self.seconds, 3), "keys_per_s": round(self.keys_per_s, 1),
            "ttl_bounds_ms": list(self.ttl_bounds_ms), "complete": self.complete,
            "problems": [p.__dict__ for p in self.problems],
            "errors_by_reason": self.errors_by_reason, "sample_keys": list(self.sample_keys),
        }


@dataclass(frozen=True)
class WarmReport:
    """Every namespace warmed, in order, and how the run ended."""

    namespaces: tuple[NamespaceWarm, ...]
    dry_run: bool = False
    only_missing: bool = False
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped early (--max-errors, out of memory)

    @property
    def written(self) -> int:
        return sum(n.written for n in self.namespaces)

    @property
    def skipped(self) -> int:
        return sum(n.skipped for n in self.namespaces)

    @property
    def rejected(self) -> int:
        return sum(n.rejected for n in self.namespaces)

    @property
    def failed(self) -> int:
        return sum(n.failed for n in self.namespaces)

    @property
    def payload_bytes(self) -> int:
        return sum(n.payload_bytes for n in self.namespaces)

    @property
    def seconds(self) -> float:
        return sum(n.seconds for n in self.namespaces)

    @property
    def ok(self) -> bool:
        """Every row written (or skipped as existing) and the run not cut short."""
        return not (self.rejected or self.failed or self.stopped or self.interrupted)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run, "only_missing": self.only_missing,
            "interrupted": self.interrupted, "stopped": self.stopped,
            "written": self.written, "skipped": self.skipped, "rejected": self.rejected,
            "failed": self.failed, "payload_bytes": self.payload_bytes,
            "seconds": round(self.seconds, 3),
            "namespaces": [n.to_json() for n in self.namespaces],
        }


@dataclass(frozen=True)
class WarmTarget:
    """A namespace and its opened source."""

    namespace: Namespace
    source: Source


@dataclass
class Tally:
    """Mutable counters for one namespace while it is warmed."""

    target: WarmTarget
    rows: int = 0
    written: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0
    payload_bytes: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    ttls: dict[bytes, int] = field(default_factory=dict)  # batch-local, for redirected retries

    def problem(self, position: int, reason: str, category: str, key: str | None = None,
                kind: str = "rejected") -> None:
        if kind == "failed":
            self.failed += 1
        else:
            self.rejected += 1
        self.reasons[category] = self.reasons.get(category, 0) + 1
        if len(self.problems) < FIRST_PROBLEMS:
            self.problems.append(RowProblem(self.target.source.locate(position), reason, key, kind))

    def result(self, seconds: float, complete: bool) -> NamespaceWarm:
        ns = self.target.namespace
        return NamespaceWarm(
            namespace=ns.name, source=self.target.source.description, rows=self.rows,
            written=self.written, skipped=self.skipped, rejected=self.rejected,
            failed=self.failed, payload_bytes=self.payload_bytes, seconds=seconds,
            ttl_bounds_ms=ttl_bounds_ms(ns), problems=tuple(self.problems),
            sample_keys=tuple(self.samples), complete=complete,
            errors_by_reason=dict(sorted(self.reasons.items(), key=lambda kv: -kv[1])))
