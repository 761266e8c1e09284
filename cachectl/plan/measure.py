"""The live side of a plan: one keyspace survey, attributed to the plan's namespaces."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from typing import Any

from cachectl.connection import primaries
from cachectl.flush import EXACT_COUNT_LIMIT, SAMPLE_KEYS
from cachectl.inspect import Z95, summary_from_survey
from cachectl.keyspace import survey_keyspace
from cachectl.pacing import RateLimiter
from cachectl.plan.model import LiveFigures, NamespacePlan, PolicyPlan
from cachectl.policy.model import Policy
from cachectl.progress import ProgressCallback, no_progress

OLD_KEYS = " (old keys)"  # the work policy's name for where an old namespace's keys are
# The survey's server-side calls for a plan run about 1 ms each, not inspect's 5 ms, and a
# sample reads 500 keys per random cursor, not 2,000: apply measures right before it
# works, on a live cache whose other clients' PING p99 it keeps under 5 ms
# (benchmarks/plan.py), and a 5 ms script call is a 5 ms wait for whoever is behind it.
MEASURE_CALL_S = 0.001
MEASURE_RUN_KEYS = 500


def old_keys_name(row: NamespacePlan) -> str:
    """The work policy's name for the keys ``row`` would remove (removed or re-keyed)."""
    return f"{row.old_name}{OLD_KEYS}"


def work_policy(plan: PolicyPlan, old: Policy, new: Policy) -> Policy:
    """The new policy, plus one namespace per removed or re-keyed one at its OLD template.

    The new namespaces come first, so a key that both an old template and a new one
    match is the new namespace's (the matcher and the flush machinery take the first
    owner in policy order): apply never removes a key the new policy claims.
    """
    namespaces = dict(new.namespaces)
    for row in plan.namespaces:
        if row.removes_old_keys and row.old_name is not None:
            name = old_keys_name(row)
            namespaces[name] = dataclasses.replace(old.namespaces[row.old_name], name=name)
    return dataclasses.replace(new, namespaces=namespaces)


def apply_sample(client: Any, sample: int | None) -> int | None:
    """The ``sample`` apply measures with: as asked, else, as flush counts, exact for a
    keyspace of at most EXACT_COUNT_LIMIT keys (DBSIZE over every primary), else
    SAMPLE_KEYS keys."""
    if sample is not None:
        return sample
    total = sum(int(node.dbsize()) for node in primaries(client))
    return None if total <= EXACT_COUNT_LIMIT else SAMPLE_KEYS


def measure_plan(
    client: Any,
    plan: PolicyPlan,
    old: Policy,
    new: Policy,
    *,
    sample: int | None = None,
    limiter: RateLimiter | None = None,
    on_progress: ProgressCallback = no_progress,
    clock: Callable[[], float] = time.perf_counter,
    rng: random.Random | None = None,
    use_lua: bool = True,
) -> PolicyPlan:
    """``plan`` with each namespace's live figures (``LiveFigures``) from one survey.

    Exact with ``sample`` None; else estimated from about ``sample`` measured keys,
    as ``cachectl inspect --sample`` does, each figure with its 95 % margin. Raises
    redis-py errors (wrap with ``redis_errors``).
    """
    work = work_policy(plan, old, new)
    survey = survey_keyspace(client, work, sample=sample, top=0, examples=0, limiter=limiter,
                             on_progress=on_progress, clock=clock, rng=rng, use_lua=use_lua,
                             call_s=MEASURE_CALL_S, run_keys=MEASURE_RUN_KEYS)
    rows = {r.namespace: r for r in summary_from_survey(survey).namespaces}
    tallies = {t.name: t for t in survey.namespaces}
    figures: dict[str, LiveFigures] = {}
    for n in plan.namespaces:
        name = old_keys_name(n) if n.removes_old_keys else n.namespace
        row, tally = rows[name], tallies[name]
        above, above_margin = 0, 0
        if n.clamp_ms is not None and tally.keys:
            # keys with no expiry count too: PEXPIRE … LT gives them the new maximum
            share = (tally.ttl_too_long + tally.no_ttl) / tally.keys
            above = round(row.keys * share)
            if row.estimated:
                var = (share * row.keys_margin / Z95) ** 2 + (
                    row.keys ** 2 * share * (1 - share) / tally.keys)
                above_margin = round(Z95 * math.sqrt(var))
        figures[n.namespace] = LiveFigures(row.keys, row.keys_margin, row.memory_bytes,
                                           row.memory_margin_bytes, above, above_margin)
    return plan.with_live(figures, "sample" if survey.sampled else "exact", survey.total_keys,
                          survey.elapsed_s)
