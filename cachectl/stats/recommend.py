"""Next to a failing hit-rate verdict: what the model of the library's captured trace recommends.

Only when the policy's trace streams hold events (the library's ``trace:`` section) and the model
can run (the ``model`` extra); anything in the way (no events, no numba, a trace the model
refuses, Redis failing) means no hint, never a different verdict or exit code. ``model_hints``
gives the figures (``ModelHint``, the ``model_hint`` of ``cachectl stats --json``), ``hint_line``
the text line, ``with_model_hints`` a report carrying them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cachectl.policy.model import Policy
from cachectl.stats.model import ModelHint, StatsReport, Status


def failing_hit_rates(report: StatsReport) -> list[str]:
    """The namespaces whose hit-rate check failed, in the report's order."""
    return [c.namespace for c in report.checks
            if c.check == "hit_rate" and c.status is Status.FAIL and c.namespace]


def model_hints(client: Any, policy: Policy, failing: list[str]) -> dict[str, ModelHint]:
    """A hint per namespace in ``failing`` the captured trace has events of (else {})."""
    if not failing:
        return {}
    from cachectl.cache.base import REDIS_ERRORS
    from cachectl.cache.trace import stream_keys
    from cachectl.errors import CachectlError

    try:
        if not sum(int(client.xlen(key)) for key in stream_keys(policy.internal_prefix)):
            return {}
        from cachectl.model import model_trace
        from cachectl.model.stream import dropped_events, read_stream_trace

        trace = read_stream_trace(client, policy)
        report = model_trace(trace, policy)
        dropped = dropped_events(client, policy, float(trace.time_s[0]))
    except (*REDIS_ERRORS, CachectlError, ImportError):
        return {}
    hints = {}
    for ns in report.namespaces:
        if ns.namespace not in failing:
            continue
        rec = ns.recommend
        hints[ns.namespace] = ModelHint(
            events=ns.sampled_requests, sample_rate=ns.sample_rate, threshold=ns.threshold,
            ttl_s=rec.ttl_s, hit_rate=rec.hit_rate, load_rate_per_s=rec.load_rate_per_s,
            memory_bytes=rec.memory_bytes, best_ttl_s=rec.best_ttl_s,
            best_hit_rate=rec.best_hit_rate, trace_dropped=dropped.get(ns.namespace, 0))
    return hints


def hint_line(namespace: str, hint: ModelHint) -> str:
    """The text ``cachectl stats`` prints after ``hint:``."""
    from cachectl.policy.units import format_size_bytes

    source = f"model of the captured trace ({hint.events:,} events at {hint.sample_rate:.3g})"
    if hint.ttl_s is not None and hint.hit_rate is not None:
        memory = f", maxmemory >= {format_size_bytes(hint.memory_bytes)}" if hint.memory_bytes else ""
        line = f"{namespace}: {source}: ttl {hint.ttl_s:g}s reaches {hint.hit_rate:.1%}{memory}"
    else:
        line = (f"{namespace}: {source}: no TTL reaches {hint.threshold:.0%}; the best, "
                f"{hint.best_ttl_s:g}s, reaches {hint.best_hit_rate:.1%}")
    if hint.trace_dropped:
        line += (f" (the library dropped {hint.trace_dropped:,} of its trace events: "
                 "the load is under-represented)")
    return line


def with_model_hints(client: Any, policy: Policy, report: StatsReport) -> StatsReport:
    """``report`` with a ``model_hint`` on each namespace whose hit rate failed (when the
    captured trace has its events); the model runs only when one failed."""
    hints = model_hints(client, policy, failing_hit_rates(report))
    if not hints:
        return report
    return dataclasses.replace(report, namespaces=tuple(
        dataclasses.replace(ns, model_hint=hints[ns.namespace]) if ns.namespace in hints else ns
        for ns in report.namespaces))
