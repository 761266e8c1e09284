"""Compare two policies namespace by namespace: ``diff_policies`` (no Redis needed)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

from cachectl.errors import UsageError
from cachectl.freshness import ttl_bounds_ms
from cachectl.plan.model import Change, FieldChange, NamespacePlan, PolicyPlan
from cachectl.policy.loader import parse_policy, policy_or_error
from cachectl.policy.model import Namespace, Policy

# the namespace fields a plan compares, and what kind of change each is
_FIELDS: tuple[tuple[str, str], ...] = (
    ("ttl_ms", "timing"), ("stale_ms", "timing"), ("stale_if_error_ms", "timing"),
    ("jitter", "timing"), ("hit_rate", "threshold"), ("critical", "threshold"),
    ("hot", "threshold"), ("max_value_bytes", "other"), ("tags", "other"),
    ("early_refresh_beta", "other"),
)


def diff_policies(old: Policy, new: Policy, *, old_path: str = "OLD",
                  new_path: str = "NEW") -> PolicyPlan:
    """What changing ``old`` into ``new`` does to each namespace, in the new policy's order
    (removed namespaces last). A namespace absent from ``new`` whose full template is
    another absent-from-``old`` namespace's is a rename, not a removal plus an addition."""
    old_by_key = {ns.template.full: ns for ns in old}
    rows: list[NamespacePlan] = []
    renamed_from: set[str] = set()
    for ns in new:
        before = old.namespaces.get(ns.name)
        if before is None:
            twin = old_by_key.get(ns.template.full)
            if twin is not None and twin.name not in new.namespaces:
                renamed_from.add(twin.name)
                rows.append(_compared(twin, ns, Change.RENAMED, old, new))
            else:
                rows.append(NamespacePlan(
                    ns.name, Change.ADDED, None, None, ns.template.full, None, ns.version,
                    new_ttl_max_ms=ttl_bounds_ms(ns)[1]))
            continue
        rows.append(_compared(before, ns, None, old, new))
    for ns in old:
        if ns.name not in new.namespaces and ns.name not in renamed_from:
            rows.append(NamespacePlan(
                ns.name, Change.REMOVED, ns.name, ns.template.full, None, ns.version, None,
                old_ttl_max_ms=ttl_bounds_ms(ns)[1]))
    return PolicyPlan(old_path, new_path, policy_fingerprint(old, new), tuple(rows),
                      _changed(dataclasses.asdict(old.thresholds),
                               dataclasses.asdict(new.thresholds), "threshold"))


def _compared(before: Namespace, after: Namespace, change: Change | None, old: Policy,
              new: Policy) -> NamespacePlan:
    fields = _changed({f: getattr(before, f) for f, _ in _FIELDS},
                      {f: getattr(after, f) for f, _ in _FIELDS}, None)
    if _inherits_hit_rate(before, old) and _inherits_hit_rate(after, new):
        # the global threshold's change is listed once, not under every namespace
        fields = tuple(f for f in fields if f.field != "hit_rate")
    reason = None
    if before.template.full != after.template.full:
        change = Change.REKEYED
        if before.version != after.version:
            reason = f"version {before.version or '(none)'} -> {after.version or '(none)'}"
        elif before.template.key_prefix != after.template.key_prefix:
            reason = (f"key_prefix {before.template.key_prefix!r} -> "
                      f"{after.template.key_prefix!r}")
        else:
            reason = f"template {before.template_source!r} -> {after.template_source!r}"
    elif change is None:
        change = Change.CHANGED if fields else Change.UNCHANGED
    return NamespacePlan(
        after.name, change, before.name, before.template.full, after.template.full,
        before.version, after.version, fields, reason,
        old_ttl_max_ms=ttl_bounds_ms(before)[1], new_ttl_max_ms=ttl_bounds_ms(after)[1])


def _inherits_hit_rate(ns: Namespace, policy: Policy) -> bool:
    t = policy.thresholds
    return ns.hit_rate == (t.critical_hit_rate if ns.critical else t.hit_rate)


def _changed(old: Mapping[str, object], new: Mapping[str, object],
             group: str | None) -> tuple[FieldChange, ...]:
    groups = dict(_FIELDS)
    return tuple(FieldChange(name, _plain(old[name]), _plain(new[name]),
                             group or groups.get(name, "other"))
                 for name in new if old.get(name) != new[name])


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def policy_fingerprint(old: Policy, new: Policy) -> str:
    """A digest of what both policies say about keys, TTLs and thresholds (16 hex digits)."""
    def facts(policy: Policy) -> object:
        return {"thresholds": dataclasses.asdict(policy.thresholds),
                "namespaces": [[ns.name, ns.template.full, ns.version,
                                *(_plain(getattr(ns, f)) for f, _ in _FIELDS)] for ns in policy]}
    text = json.dumps([facts(old), facts(new)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_policy_at(path: Path, ref: str, env: Mapping[str, str]) -> Policy:
    """The policy file ``path`` as it was at git revision ``ref`` (``git show REF:path``).

    Raises UsageError when git cannot show it, PolicyError when that version is invalid.
    """
    if not ref or ref.startswith("-"):  # git would read it as an option
        raise UsageError(f"--base {ref!r} is not a git revision",
                         hint="name a commit, branch or tag, e.g. --base main")
    folder = path.resolve().parent
    try:
        shown = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", "-C", str(folder), "show", f"{ref}:./{path.name}"],  # noqa: S607
            capture_output=True, check=False, timeout=30)
    except FileNotFoundError:
        raise UsageError("--base needs git, and git is not installed",
                         hint="pass the old policy as a file: cachectl plan OLD NEW") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"git show {ref}:{path.name} took over 30 s",
                         hint="pass the old policy as a file: cachectl plan OLD NEW") from None
    if shown.returncode != 0:
        why = shown.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(f"cannot read {path} at {ref}: {why[-1] if why else 'git failed'}",
                         hint="name a commit, branch or tag that has the file, e.g. --base main")
    return policy_or_error(parse_policy(shown.stdout, f"{path}@{ref}", env, source_path=path),
                           f"{path}@{ref}")
