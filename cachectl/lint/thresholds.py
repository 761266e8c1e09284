"""CP3xx rules: thresholds that are not ratios, not positive, or cannot be met."""

from __future__ import annotations

import math

from cachectl.diagnostics import Code
from cachectl.lint.context import LintContext

_GLOBAL_RATIOS = ("hit_rate", "critical_hit_rate", "memory_used_ratio", "max_stale_ratio")
_HIT_RATES = ("hit_rate", "critical_hit_rate")


def _in_range(ratio: float) -> bool:
    return 0 < ratio <= 1


def check(ctx: LintContext) -> None:
    t = ctx.spec.thresholds
    for field_name in _GLOBAL_RATIOS:
        value = getattr(t, field_name)
        _ratio(ctx, f"thresholds.{field_name}", value, ("thresholds", field_name))
        if field_name in _HIT_RATES and value == 1:
            _unreachable(ctx, f"thresholds.{field_name}", ("thresholds", field_name))
    for field_name in ("cached", "hot"):
        value = getattr(t.latency_p99_ms, field_name)
        if not value > 0 or math.isnan(value):
            ctx.report(Code.LATENCY_NOT_POSITIVE,
                       f"thresholds.latency_p99_ms.{field_name} is {value:g} ms; a "
                       "latency threshold must be above 0",
                       ctx.value("thresholds", "latency_p99_ms", field_name),
                       f"the default is {50 if field_name == 'cached' else 10} ms")
    if _in_range(t.hit_rate) and _in_range(t.critical_hit_rate) \
            and t.critical_hit_rate < t.hit_rate:
        ctx.report(Code.CRITICAL_BELOW_GLOBAL,
                   f"critical_hit_rate {t.critical_hit_rate:.0%} is below hit_rate "
                   f"{t.hit_rate:.0%}", ctx.value("thresholds", "critical_hit_rate"),
                   "critical namespaces should be held to a higher bar, not a lower one")
    if ctx.spec.trace is not None:
        _ratio(ctx, "trace.sample", ctx.spec.trace.sample, ("trace", "sample"))
    hot, cached = t.latency_p99_ms.hot, t.latency_p99_ms.cached
    if hot > 0 and cached > 0 and hot > cached:
        ctx.report(Code.HOT_LATENCY_ABOVE_CACHED,
                   f"the hot p99 threshold ({hot:g} ms) is above the cached one "
                   f"({cached:g} ms)", ctx.value("thresholds", "latency_p99_ms", "hot"),
                   "hot data is read most and must be the fastest; lower hot or raise cached")
    for name, ns in ctx.namespaces():
        if ns.hit_rate is None:
            continue
        where = ("namespaces", name, "hit_rate")
        _ratio(ctx, f"namespace {name}: hit_rate", ns.hit_rate, where)
        if ns.hit_rate == 1:
            _unreachable(ctx, f"namespace {name}: hit_rate", where)


def _ratio(ctx: LintContext, what: str, value: float, at: tuple[str | int, ...]) -> None:
    """CP301: a threshold ratio must lie in (0, 1]."""
    if not _in_range(value):
        ctx.report(Code.RATIO_OUT_OF_RANGE, f"{what} is {value:g}; a ratio must be in (0, 1]", ctx.value(*at),
                   "write 0.8 or 80%")


def _unreachable(ctx: LintContext, what: str, at: tuple[str | int, ...]) -> None:
    """CP305: every first read is a miss, so 100 % hits is never met."""
    ctx.report(Code.UNREACHABLE_THRESHOLD, f"{what} of 100 % can never be met (every first read is a miss)",
               ctx.value(*at), "use 99% or lower")
