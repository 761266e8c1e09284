"""Next to a failing hit-rate verdict: what the model of the library's captured trace recommends.

Only when the policy's trace streams hold events (the library's ``trace:`` section) and the model
can run (the ``model`` extra); anything in the way (no events, no numba, a trace the model
refuses, Redis failing) means no line, never a different verdict or exit code.
"""

from __future__ import annotations

from typing import Any

from cachectl.policy.model import Policy


def trace_recommendations(client: Any, policy: Policy, failing: list[str]) -> dict[str, str]:
    """One line per namespace in ``failing`` the captured trace has events of (else {})."""
    if not failing:
        return {}
    from cachectl.cache.base import REDIS_ERRORS
    from cachectl.cache.trace import stream_keys
    from cachectl.errors import CachectlError
    from cachectl.policy.units import format_size_bytes

    try:
        if not sum(int(client.xlen(key)) for key in stream_keys(policy.internal_prefix)):
            return {}
        from cachectl.model import model_trace
        from cachectl.model.stream import read_stream_trace

        report = model_trace(read_stream_trace(client, policy), policy)
    except (*REDIS_ERRORS, CachectlError, ImportError):
        return {}
    lines = {}
    for ns in report.namespaces:
        if ns.namespace not in failing:
            continue
        rec = ns.recommend
        source = f"model of the captured trace ({ns.sampled_requests:,} events at {ns.sample_rate:.3g})"
        if rec.ttl_s is not None and rec.hit_rate is not None:
            memory = f", maxmemory >= {format_size_bytes(rec.memory_bytes)}" if rec.memory_bytes else ""
            lines[ns.namespace] = (f"{ns.namespace}: {source}: ttl {rec.ttl_s:g}s reaches "
                                   f"{rec.hit_rate:.1%}{memory}")
        else:
            lines[ns.namespace] = (f"{ns.namespace}: {source}: no TTL reaches "
                                   f"{ns.threshold:.0%}; the best, {rec.best_ttl_s:g}s, "
                                   f"reaches {rec.best_hit_rate:.1%}")
    return lines
