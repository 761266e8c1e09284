"""What a plan is: frozen records, and their JSON form (the ``--json`` document, docs/plan.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from cachectl.errors import UsageError

PLAN_FORMAT = 1


class Change(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    RENAMED = "renamed"  # the same template under a new name: its keys stay valid
    REKEYED = "rekeyed"  # template, version or key prefix changed: old keys are orphans
    CHANGED = "changed"  # same keys; timing, thresholds or other fields changed
    UNCHANGED = "unchanged"


DESTRUCTIVE = (Change.REMOVED, Change.REKEYED)


@dataclass(frozen=True)
class FieldChange:
    """One field that differs; ``group`` is timing, threshold or other."""

    field: str
    old: Any
    new: Any
    group: str


@dataclass(frozen=True)
class LiveFigures:
    """A namespace's keys in the live cache, where the OLD policy put them.

    Estimates when the survey was sampled, each with the half-width of its 95 %
    interval (``*_margin``, 0 when exact). ``ttl_above_max`` counts keys whose PTTL
    exceeds the new maximum, or that have no expiry at all.
    """

    keys: int
    keys_margin: int
    memory_bytes: int
    memory_margin_bytes: int
    ttl_above_max: int
    ttl_above_max_margin: int


@dataclass(frozen=True)
class Prediction:
    """Hit rate and origin loads per second predicted from a trace, before and after the
    change (``after`` None for a removed namespace); ``rekey_extra_loads``: for a re-key,
    the origin loads its cold start adds in the first minutes (see ``predict_hit_rates``)."""

    hit_rate_before: float
    hit_rate_after: float | None
    loads_per_s_before: float
    loads_per_s_after: float | None
    rekey_extra_loads: int | None = None


@dataclass(frozen=True)
class NamespacePlan:
    """What the change does to one namespace.

    ``old_key``/``new_key`` are full templates (key prefix and version in); None where
    the namespace does not exist on that side. ``ttl_max_ms`` is the longest PTTL a
    write can set (ttl·(1+jitter) + grace). ``clamp_ms`` is set when keys alive now may
    carry a TTL above the new maximum: apply lowers them to it.
    """

    namespace: str  # the new name (the old one for a removed namespace)
    change: Change
    old_name: str | None
    old_key: str | None
    new_key: str | None
    old_version: int | None
    new_version: int | None
    fields: tuple[FieldChange, ...] = ()
    reason: str | None = None  # for a re-key: what changed
    old_ttl_max_ms: int | None = None
    new_ttl_max_ms: int | None = None
    live: LiveFigures | None = None
    predicted: Prediction | None = None

    @property
    def clamp_ms(self) -> int | None:
        if self.change not in (Change.CHANGED, Change.RENAMED, Change.UNCHANGED):
            return None
        if self.old_ttl_max_ms is None or self.new_ttl_max_ms is None:
            return None
        return self.new_ttl_max_ms if self.new_ttl_max_ms < self.old_ttl_max_ms else None

    @property
    def removes_old_keys(self) -> bool:
        return self.change in DESTRUCTIVE

    @property
    def action(self) -> str:
        """What apply does: remove, clamp, warm (only with --warm) or none."""
        if self.removes_old_keys:
            return "remove"
        if self.clamp_ms is not None:
            return "clamp"
        return "warm" if self.change is Change.ADDED else "none"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace, "change": self.change.value, "action": self.action,
            "old_name": self.old_name, "old_key": self.old_key, "new_key": self.new_key,
            "old_version": self.old_version, "new_version": self.new_version,
            "reason": self.reason,
            "fields": [{"field": f.field, "old": f.old, "new": f.new, "group": f.group}
                       for f in self.fields],
            "ttl_max_ms": {"old": self.old_ttl_max_ms, "new": self.new_ttl_max_ms},
            "clamp_ms": self.clamp_ms,
            "live": None,
            "predicted": dataclasses.asdict(self.predicted) if self.predicted else None,
        }
        if self.live is not None:
            lv = self.live
            out["live"] = {"keys": lv.keys, "keys_margin": lv.keys_margin,
                           "memory_bytes": lv.memory_bytes,
                           "memory_margin_bytes": lv.memory_margin_bytes,
                           "ttl_above_max": lv.ttl_above_max,
                           "ttl_above_max_margin": lv.ttl_above_max_margin}
        return out


@dataclass(frozen=True)
class PolicyPlan:
    """The whole change: per namespace, the global thresholds, and the live survey's mode.

    ``fingerprint`` identifies the pair of policies (what they say about keys, TTLs and
    thresholds); apply refuses a plan whose fingerprint is not the policies' it is given.
    """

    old_path: str
    new_path: str
    fingerprint: str
    namespaces: tuple[NamespacePlan, ...]
    thresholds: tuple[FieldChange, ...] = ()
    live_mode: str | None = None  # None: not measured; "exact" or "sample"
    live_total_keys: int | None = None
    live_elapsed_s: float | None = None
    traces: tuple[str, ...] = ()  # the access traces the predictions come from

    def count(self, change: Change) -> int:
        return sum(1 for n in self.namespaces if n.change is change)

    @property
    def destructive(self) -> bool:
        """True when the change would orphan or remove keys (a namespace removed or re-keyed)."""
        return any(n.removes_old_keys for n in self.namespaces)

    @property
    def measured(self) -> bool:
        return self.live_mode is not None

    def with_live(self, figures: dict[str, LiveFigures], mode: str, total_keys: int,
                  elapsed_s: float) -> PolicyPlan:
        rows = tuple(replace(n, live=figures.get(n.namespace)) for n in self.namespaces)
        return replace(self, namespaces=rows, live_mode=mode, live_total_keys=total_keys,
                       live_elapsed_s=elapsed_s)

    def with_predictions(self, predictions: dict[str, Prediction],
                         traces: tuple[str, ...]) -> PolicyPlan:
        rows = tuple(replace(n, predicted=predictions.get(n.namespace)) for n in self.namespaces)
        return replace(self, namespaces=rows, traces=traces)

    def to_json(self) -> dict[str, Any]:
        changes = {c.value: self.count(c) for c in Change}
        live = None
        if self.live_mode is not None:
            live = {"mode": self.live_mode, "total_keys": self.live_total_keys,
                    "elapsed_s": round(self.live_elapsed_s or 0.0, 3),
                    "keys_to_remove": sum(n.live.keys for n in self.namespaces
                                          if n.live and n.removes_old_keys),
                    "keys_to_clamp": sum(n.live.ttl_above_max for n in self.namespaces
                                         if n.live and n.clamp_ms is not None)}
        return {
            "format": PLAN_FORMAT, "old": self.old_path, "new": self.new_path,
            "fingerprint": self.fingerprint, "destructive": self.destructive,
            "changes": changes,
            "thresholds": [{"field": f.field, "old": f.old, "new": f.new}
                           for f in self.thresholds],
            "namespaces": [n.to_json() for n in self.namespaces],
            "live": live,
            "traces": list(self.traces),
        }


def plan_from_json(doc: Any) -> PolicyPlan:
    """A plan read back from its ``--json`` document; UsageError when it is not one."""
    try:
        if doc["format"] != PLAN_FORMAT:
            raise UsageError(f"plan format {doc['format']!r} is not {PLAN_FORMAT}",
                             hint="make the plan again with this cachectl: cachectl plan … --json")
        rows = []
        for n in doc["namespaces"]:
            live = n.get("live")
            rows.append(NamespacePlan(
                namespace=n["namespace"], change=Change(n["change"]), old_name=n["old_name"],
                old_key=n["old_key"], new_key=n["new_key"], old_version=n["old_version"],
                new_version=n["new_version"],
                fields=tuple(FieldChange(f["field"], f["old"], f["new"], f["group"])
                             for f in n["fields"]),
                reason=n["reason"], old_ttl_max_ms=n["ttl_max_ms"]["old"],
                new_ttl_max_ms=n["ttl_max_ms"]["new"],
                live=LiveFigures(live["keys"], live["keys_margin"], live["memory_bytes"],
                                 live["memory_margin_bytes"], live["ttl_above_max"],
                                 live["ttl_above_max_margin"]) if live else None,
                predicted=Prediction(**n["predicted"]) if n.get("predicted") else None))
        live_doc = doc.get("live")
        return PolicyPlan(
            old_path=doc["old"], new_path=doc["new"], fingerprint=doc["fingerprint"],
            namespaces=tuple(rows),
            thresholds=tuple(FieldChange(f["field"], f["old"], f["new"], "threshold")
                             for f in doc["thresholds"]),
            live_mode=live_doc["mode"] if live_doc else None,
            live_total_keys=live_doc["total_keys"] if live_doc else None,
            live_elapsed_s=live_doc["elapsed_s"] if live_doc else None,
            traces=tuple(doc.get("traces", ())))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"not a cachectl plan document ({type(exc).__name__}: {exc})",
                         hint="pass the output of cachectl plan OLD NEW --url … --json") from None
