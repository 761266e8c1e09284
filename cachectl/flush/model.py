"""The results of a flush: frozen, plain, and turned into tables or JSON by the render layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cachectl.flush.targets import FlushMode


def changed_word(mode: FlushMode | str) -> str:
    """What a run of ``mode`` did to a key: removed, softened or clamped."""
    words: dict[str, str] = {FlushMode.SOFT: "softened", FlushMode.CLAMP: "clamped"}
    return words.get(str(mode), "removed")


@dataclass(frozen=True)
class TargetResult:
    """What a flush did to one target."""

    target: str
    kind: str
    name: str
    matched: int  # keys found that are the target's to flush
    changed: int  # removed (hard) or softened (soft)
    vanished: int  # gone (expired or deleted by someone else) before we got to them
    other_namespace: int  # matched the glob, but owned by another namespace or by cachectl
    already_stale: int = 0  # soft: PTTL already within the stale band
    no_ttl: int = 0  # soft: had no expiry; now expire at the top of the stale band
    examples: tuple[bytes, ...] = ()

    @property
    def skipped(self) -> int:
        return self.vanished + self.other_namespace + self.already_stale


@dataclass(frozen=True)
class NodeResult:
    """What a flush did on one primary (all targets but named keys): keys matched and
    changed, when its first SCAN began (seconds after the flush began) and how many
    seconds it worked. A cluster's primaries are flushed at the same time."""

    node: str
    matched: int
    changed: int
    started_s: float
    seconds: float


@dataclass(frozen=True)
class FlushResult:
    """The outcome of ``flush_namespaces`` (also the partial result of an interrupted run)."""

    mode: FlushMode
    dry_run: bool
    what: str
    targets: tuple[TargetResult, ...]
    seconds: float
    batches: int
    backoffs: int  # times the latency governor shrank the batch and paused
    paused_s: float  # seconds spent pausing for the server's latency or the rate limit
    max_ping_ms: float  # the highest PING round trip seen between batches
    interrupted: bool = False
    audit_id: str | None = None
    audit_error: str | None = None  # the audit entry could not be written (the flush was)
    # keys of batches sent whose reply never came (Redis stalled or the connection broke):
    # the server may have acted on them; counted apart, neither changed nor untouched
    uncertain: int = 0
    nodes: tuple[NodeResult, ...] = ()

    @property
    def matched(self) -> int:
        return sum(t.matched for t in self.targets)

    @property
    def changed(self) -> int:
        return sum(t.changed for t in self.targets)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.targets)

    @property
    def keys_per_s(self) -> float:
        return self.matched / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        changed_name = changed_word(self.mode)
        return {
            "mode": self.mode.value,
            "dry_run": self.dry_run,
            "what": self.what,
            "matched": self.matched,
            changed_name: 0 if self.dry_run else self.changed,
            "skipped": self.skipped,
            "uncertain": self.uncertain,
            "seconds": round(self.seconds, 3),
            "keys_per_s": round(self.keys_per_s, 1),
            "interrupted": self.interrupted,
            "audit_id": self.audit_id,
            "audit_error": self.audit_error,
            "pacing": {"batches": self.batches, "backoffs": self.backoffs,
                       "paused_s": round(self.paused_s, 3),
                       "max_ping_ms": round(self.max_ping_ms, 3)},
            "targets": [
                {"target": t.target, "kind": t.kind, "name": t.name, "matched": t.matched,
                 changed_name: t.changed, "skipped": t.skipped,
                 "skipped_detail": {"vanished": t.vanished, "other_namespace": t.other_namespace,
                                    "already_stale": t.already_stale},
                 **({"no_ttl": t.no_ttl} if self.mode is FlushMode.SOFT else {}),
                 "examples": list(t.examples)}
                for t in self.targets],
            "nodes": [{"node": n.node, "matched": n.matched,
                       changed_name: 0 if self.dry_run else n.changed,
                       "started_s": round(n.started_s, 4), "seconds": round(n.seconds, 4)}
                      for n in self.nodes],
        }
