"""CP1xx rules beyond parsing: stale and jitter in proportion to the TTL, positive sizes."""

from __future__ import annotations

from cachectl.diagnostics import Code
from cachectl.lint.context import LintContext
from cachectl.policy.units import format_duration_ms

JITTER_WARN_ABOVE = 0.5


def check(ctx: LintContext) -> None:
    d = ctx.spec.defaults
    # values that come from defaults alone are reported once, at defaults
    if d.ttl is not None and d.ttl > 0 and d.stale > d.ttl:
        _stale(ctx, "defaults", d.stale, d.ttl, ("defaults", "stale"))
    if JITTER_WARN_ABOVE < d.jitter < 1:
        _jitter(ctx, "defaults", d.jitter, ("defaults", "jitter"))
    for name, ns in ctx.namespaces():
        ttl, _ = ctx.inherited(name, ns, "ttl")
        stale, stale_at = ctx.inherited(name, ns, "stale")
        if (ns.ttl is not None or ns.stale is not None) and isinstance(ttl, int) \
                and isinstance(stale, int) and ttl > 0 and stale > ttl:
            _stale(ctx, f"namespace {name}", stale, ttl, stale_at)
        if ns.jitter is not None and JITTER_WARN_ABOVE < ns.jitter < 1:
            _jitter(ctx, f"namespace {name}", ns.jitter, ("namespaces", name, "jitter"))
        if ns.max_value_bytes is not None and ns.max_value_bytes <= 0:
            _size(ctx, f"namespace {name}", ns.max_value_bytes,
                  ("namespaces", name, "max_value_bytes"))
    if d.max_value_bytes is not None and d.max_value_bytes <= 0:
        _size(ctx, "defaults", d.max_value_bytes, ("defaults", "max_value_bytes"))


def _size(ctx: LintContext, who: str, size: int, at: tuple[str | int, ...]) -> None:
    """CP108: a size limit of zero or less would refuse every value."""
    ctx.report(Code.INVALID_SIZE, f"{who}: max_value_bytes must be positive (got {size})", ctx.value(*at),
               "write a size such as 64KiB, or leave it out for no limit")


def _stale(ctx: LintContext, who: str, stale: int, ttl: int, at: tuple[str | int, ...]) -> None:
    """CP104: a stale window longer than the fresh TTL serves old data most of the time."""
    ctx.report(Code.STALE_EXCEEDS_TTL, f"{who}: stale {format_duration_ms(stale)} is longer than ttl "
               f"{format_duration_ms(ttl)}", ctx.value(*at),
               "keys would be served stale longer than fresh; raise ttl or shorten stale")


def _jitter(ctx: LintContext, who: str, jitter: float, at: tuple[str | int, ...]) -> None:
    """CP107: jitter over half the TTL makes some keys expire almost at once."""
    ctx.report(Code.JITTER_OUT_OF_PROPORTION,
               f"{who}: jitter {jitter:.0%} is over half the ttl", ctx.value(*at),
               "10-20 % spreads expiry enough; more makes some keys live very briefly")
