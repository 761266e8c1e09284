"""``apply_plan``: do what a measured plan says, and only that; ``check_plan_current``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.exceptions as rex

from cachectl.errors import InterruptedWork, UsageError
from cachectl.flush import Actor, FlushResult, FlushStep, FlushTarget, flush_in_one_pass
from cachectl.plan.measure import old_keys_name, work_policy
from cachectl.plan.model import Change, LiveFigures, NamespacePlan, PolicyPlan
from cachectl.policy.model import Policy
from cachectl.progress import ProgressCallback, no_progress

SLACK_KEYS = 10  # a live count may exceed the plan's by this much, plus margins and 5 %
SLACK_SHARE = 0.05


class StalePlanError(UsageError):
    """The plan given no longer describes the policies or the live keyspace."""


@dataclass(frozen=True)
class ApplyResult:
    """What apply did: the measured plan it acted on, and each step's own result.

    ``clamped`` and ``removed`` are the flush machinery's results (None when that step
    had nothing to do); ``warmed`` is warm's report when ``--warm`` ran.
    """

    plan: PolicyPlan
    dry_run: bool
    clamped: FlushResult | None = None
    removed: FlushResult | None = None
    warmed: Any = None

    @property
    def nothing_to_do(self) -> bool:
        return keys_to_clamp(self.plan) == 0 and keys_to_remove(self.plan) == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "nothing_to_do": self.nothing_to_do,
            "planned": {"clamp": keys_to_clamp(self.plan), "remove": keys_to_remove(self.plan),
                        "estimated": self.plan.live_mode == "sample"},
            "clamped": self.clamped.to_json() if self.clamped else None,
            "removed": self.removed.to_json() if self.removed else None,
            "warmed": self.warmed,
            "plan": self.plan.to_json(),
        }


def _live(row: NamespacePlan) -> LiveFigures:
    return row.live or LiveFigures(0, 0, 0, 0, 0, 0)


def keys_to_clamp(plan: PolicyPlan) -> int:
    return sum(_live(n).ttl_above_max for n in plan.namespaces if n.clamp_ms is not None)


def keys_to_remove(plan: PolicyPlan) -> int:
    return sum(_live(n).keys for n in plan.namespaces if n.removes_old_keys)


def check_plan_current(given: PolicyPlan, live: PolicyPlan) -> None:
    """Refuse (StalePlanError) a plan made from other policies, never measured, or older
    than the keyspace: one that would now clamp or remove clearly more keys than it said.

    Fewer keys are fine (keys expire, an interrupted apply did part of the work); more
    than the plan's count plus both margins plus 5 % (and a few keys) means the keyspace
    grew after the plan was read and agreed to.
    """
    again = f"make the plan again: cachectl plan {live.old_path} {live.new_path} --url … --json"
    if given.fingerprint != live.fingerprint:
        raise StalePlanError(
            f"the plan was made from other policies (fingerprint {given.fingerprint}, "
            f"these give {live.fingerprint})", hint=again)
    if not given.measured:
        raise StalePlanError("the plan was made without --url, so it says no key counts",
                             hint=again)
    planned = {n.namespace: n for n in given.namespaces}
    for now in live.namespaces:
        if now.action not in ("clamp", "remove"):
            continue
        then = planned.get(now.namespace)
        was, margin = _figure(then) if then is not None else (0, 0)
        is_, live_margin = _figure(now)
        slack = margin + live_margin + max(SLACK_KEYS, math.ceil(SLACK_SHARE * was))
        if is_ > was + slack:
            verb = "clamp" if now.action == "clamp" else "remove"
            raise StalePlanError(
                f"the keyspace changed since the plan: namespace {now.namespace} would now "
                f"{verb} {is_} keys, the plan said {was}", hint=again)


def _figure(row: NamespacePlan) -> tuple[int, int]:
    live = _live(row)
    if row.action == "clamp":
        return live.ttl_above_max, live.ttl_above_max_margin
    return live.keys, live.keys_margin


def apply_plan(
    client: Any,
    plan: PolicyPlan,
    old: Policy,
    new: Policy,
    *,
    dry_run: bool = False,
    warm: bool = False,
    env: Mapping[str, str] | None = None,
    rate: float | None = None,
    batch: int = 1000,
    on_progress: ProgressCallback = no_progress,
    should_stop: Callable[[], bool] | None = None,
    actor: Actor | None = None,
) -> ApplyResult:
    """Clamp and remove what the measured ``plan`` says (warming first with ``warm``).

    Clamp: every key of a namespace whose maximum TTL shrank, with a PTTL above the
    new maximum or none, gets the new maximum (never lengthened). Remove: every key at
    a removed or re-keyed namespace's old template that no new namespace claims is
    UNLINKed. Both steps run in one SCAN walk of the keyspace through the flush
    machinery (``flush_in_one_pass``: exact matcher, cluster-wide, paced by the
    server's latency, one audit entry per step), so an interrupted run stops cleanly
    (InterruptedWork carrying the partial ApplyResult) and a rerun finishes it:
    clamped keys are not above the maximum any more, removed ones are not found.
    ``dry_run`` changes nothing and returns the plan. Raises redis-py errors (with the
    partial ApplyResult as ``partial``).
    """
    if dry_run:
        return ApplyResult(plan, True)
    work = work_policy(plan, old, new)
    warmed = None
    if warm:
        from cachectl.warm import warm_namespaces

        names = [n.namespace for n in plan.namespaces
                 if n.change in (Change.ADDED, Change.REKEYED) and new.namespaces[n.namespace].warm]
        if names:
            warmed = warm_namespaces(client, new, names, env=env, only_missing=True,
                                     should_stop=should_stop)
    # an exact plan skips what holds no key; a sampled one may have missed a few, so
    # every planned step runs (a SCAN finding nothing changes nothing)
    exact = plan.live_mode == "exact"
    clamp = [n for n in plan.namespaces
             if n.clamp_ms is not None and (_live(n).ttl_above_max or not exact)]
    remove = [n for n in plan.namespaces if n.removes_old_keys and (_live(n).keys or not exact)]
    steps: list[FlushStep] = []
    totals: dict[str, int] = {}
    if clamp:
        targets = tuple(FlushTarget("namespace", n.namespace, "apply: clamp TTL") for n in clamp)
        steps.append(FlushStep(targets, ceilings_ms={
            n.namespace: n.clamp_ms for n in clamp if n.clamp_ms is not None}))
        totals.update((t.label, _live(n).ttl_above_max) for t, n in zip(targets, clamp, strict=True))
    if remove:
        targets = tuple(FlushTarget("namespace", old_keys_name(n), "apply: remove") for n in remove)
        steps.append(FlushStep(targets))
        totals.update((t.label, _live(n).keys) for t, n in zip(targets, remove, strict=True))
    if not steps:
        return ApplyResult(plan, False, warmed=warmed)

    def result_of(results: tuple[FlushResult, ...]) -> ApplyResult:
        done = iter(results)
        return ApplyResult(plan, False, next(done) if clamp else None,
                           next(done) if remove else None, warmed)

    # both steps in one SCAN walk of the keyspace: a key is clamped or removed as the
    # walk reaches it (a key is at most one target's), and each step is audited apart
    try:
        results = flush_in_one_pass(client, work, steps, rate=rate, batch=batch,
                                    on_progress=on_progress, totals=totals,
                                    should_stop=should_stop, actor=actor)
    except (InterruptedWork, rex.RedisError) as exc:
        parts = getattr(exc, "partial", None)
        if isinstance(parts, tuple):
            exc.partial = result_of(parts)  # type: ignore[union-attr]
        raise
    return result_of(results)
