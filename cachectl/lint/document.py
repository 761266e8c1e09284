"""CP0xx rules the loader cannot see: a policy that declares nothing."""

from __future__ import annotations

from cachectl.diagnostics import Code
from cachectl.lint.context import LintContext


def check(ctx: LintContext) -> None:
    """CP011: no namespace at all (every command would have nothing to do)."""
    if not ctx.spec.namespaces:
        ctx.report(Code.NO_NAMESPACES, "the policy declares no namespace",
                   ctx.key("namespaces") if ("namespaces",) in ctx.spans.keys else ctx.value(),
                   'add one, e.g. namespaces: {product: {key: "product:{id}", ttl: 10m}}')
