"""CP2xx rules on key templates: glob characters, whitespace, and overlapping namespaces."""

from __future__ import annotations

import unicodedata
from collections import defaultdict

from cachectl.lint.context import LintContext
from cachectl.policy.template import GLOB_SPECIALS, KeyTemplate, TemplateSyntaxError


def check(ctx: LintContext) -> None:
    for name, ns in ctx.namespaces():
        at = ctx.value("namespaces", name, "key")
        bad = sorted({ch for ch in ns.key if _is_space_or_control(ch)})
        if bad:
            shown = ", ".join(repr(ch) for ch in bad)
            ctx.report("CP208", f"namespace {name}: key {ns.key!r} holds whitespace or control "
                       f"characters ({shown})", at,
                       "keys with spaces are hard to type in redis-cli and to SCAN; use _ or -")
        try:
            own = KeyTemplate(ns.key)
        except TemplateSyntaxError:
            continue
        if own.has_glob_characters:
            chars = sorted({ch for s in own.segments for ch in s.prefix + s.suffix
                            if ch in GLOB_SPECIALS})
            ctx.report("CP204", f"namespace {name}: key {ns.key!r} holds the glob characters "
                       f"{' '.join(chars)}", at,
                       "cachectl escapes them when scanning, but redis-cli KEYS/SCAN users will "
                       "not; prefer letters, digits, _ - . and :")
    _overlaps(ctx)


def _is_space_or_control(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def _overlaps(ctx: LintContext) -> None:
    """CP205: report on the later namespace's key, naming the earlier one it collides with.

    Templates only overlap with the same number of segments, and two literal first
    segments must be equal, so bucketing keeps a 500-namespace policy fast.
    """
    templates = ctx.templates
    by_shape: dict[int, list[tuple[str, KeyTemplate]]] = defaultdict(list)
    for name, template in templates.items():
        shape = len(template.segments)
        for earlier, other in by_shape[shape]:
            if _may_share_first(template, other) and template.can_overlap(other):
                ctx.report(
                    "CP205",
                    f"namespace {name}: key {template.source!r} can match the same keys as "
                    f"namespace {earlier} ({other.source!r})",
                    ctx.value("namespaces", name, "key"),
                    "a key must belong to one namespace; add a distinct literal segment, "
                    f"e.g. {name}:{template.source}")
        by_shape[shape].append((name, template))


def _may_share_first(a: KeyTemplate, b: KeyTemplate) -> bool:
    fa, fb = a.segments[0], b.segments[0]
    return not (fa.is_literal and fb.is_literal and fa.prefix != fb.prefix)
