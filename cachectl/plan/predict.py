"""Hit rates before and after a policy change, predicted from an access trace (``cachectl model``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from cachectl.model import ModelOptions, NamespaceModel, model_trace, read_traces
from cachectl.plan.model import Change, PolicyPlan, Prediction
from cachectl.policy.model import Namespace, Policy
from cachectl.progress import ProgressCallback, no_progress

REKEY_WINDOW_S = 300.0  # the "first minutes" after a re-key whose extra origin loads are counted


def _with_timing(old: Namespace, new: Namespace) -> Namespace:
    return dataclasses.replace(old, ttl_ms=new.ttl_ms, stale_ms=new.stale_ms,
                               stale_if_error_ms=new.stale_if_error_ms, jitter=new.jitter,
                               hit_rate=new.hit_rate)


def _at_policy_ttl(m: NamespaceModel) -> tuple[float, float]:
    point = min(m.ttl_curve, key=lambda p: abs(p.ttl_s - m.policy_ttl_s))
    return point.hit_rate, point.load_rate_per_s


def predict_hit_rates(plan: PolicyPlan, old: Policy, new: Policy, traces: Sequence[Path],
                      *, on_progress: ProgressCallback = no_progress) -> PolicyPlan:
    """``plan`` with each namespace's predicted hit rate and origin load before and after.

    The trace is read with the OLD policy's templates (it records today's traffic) and
    simulated twice: under the old timing, and under the new one (each namespace's ttl,
    stale, stale_if_error, jitter from its counterpart in ``new``), at each policy's
    TTL. For a re-keyed namespace, ``rekey_extra_loads`` estimates the origin loads its
    cold start adds in the first REKEY_WINDOW_S: the distinct keys requested in the
    trace's first window, times the hit rate they would have had. Raises TraceError or
    UsageError (numba/numpy missing: the ``model`` extra).
    """
    import numpy as np

    trace = read_traces(list(traces), old)
    counterpart = {n.old_name: new.namespaces[n.namespace] for n in plan.namespaces
                   if n.old_name is not None and n.change is not Change.REMOVED}
    timed = dataclasses.replace(old, namespaces={
        name: _with_timing(ns, counterpart[name]) if name in counterpart else ns
        for name, ns in old.namespaces.items()})
    ttls = tuple(sorted({ns.ttl_ms / 1000 for p in (old, timed) for ns in p}))
    options = ModelOptions(ttls_s=ttls)
    before = {m.namespace: m for m in model_trace(trace, old, options, on_progress).namespaces}
    after = {m.namespace: m for m in model_trace(trace, timed, options, on_progress).namespaces}
    start = float(trace.time_s[0]) if len(trace) else 0.0
    predictions: dict[str, Prediction] = {}
    for n in plan.namespaces:
        if n.old_name is None or n.old_name not in before:
            continue
        hit_before, load_before = _at_policy_ttl(before[n.old_name])
        hit_after = load_after = None
        if n.change is not Change.REMOVED and n.old_name in after:
            hit_after, load_after = _at_policy_ttl(after[n.old_name])
        extra = None
        if n.change is Change.REKEYED:
            g = trace.namespaces.index(n.old_name)
            window = (trace.ns == g) & (trace.time_s < start + REKEY_WINDOW_S)
            extra = round(len(np.unique(trace.key_hash[window])) * hit_before)
        predictions[n.namespace] = Prediction(hit_before, hit_after, load_before, load_after, extra)
    return plan.with_predictions(predictions, tuple(trace.sources))
