"""CP2xx rules on key templates: glob characters, whitespace, and overlapping namespaces."""

from __future__ import annotations

import unicodedata
from collections import defaultdict

from cachectl.lint.context import LintContext
from cachectl.policy.template import GLOB_SPECIALS, KeyTemplate


def check(ctx: LintContext) -> None:
    for name, ns in ctx.namespaces():
        at = ctx.value("namespaces", name, "key")
        bad = sorted({ch for ch in ns.key if _is_space_or_control(ch)})
        if bad:
            shown = ", ".join(repr(ch) for ch in bad)
            ctx.report("CP208", f"namespace {name}: key {ns.key!r} holds whitespace or control "
                       f"characters ({shown})", at,
                       "keys with spaces are hard to type in redis-cli and to SCAN; use _ or -")
        template = ctx.templates.get(name)
        if template is None:
            continue
        # the key prefix's own segments come first; CP209 judges those
        prefix_segments = len(template.key_prefix.split(":")) if template.key_prefix else 0
        chars = sorted({ch for seg in template.segments[prefix_segments:]
                        for ch in seg.prefix + seg.suffix if ch in GLOB_SPECIALS})
        if chars:
            ctx.report("CP204", f"namespace {name}: key {ns.key!r} holds the glob characters "
                       f"{' '.join(chars)}", at,
                       "cachectl escapes them when scanning, but redis-cli KEYS/SCAN users will "
                       "not; prefer letters, digits, _ - . and :")
    _overlaps(ctx)


def _is_space_or_control(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def _overlaps(ctx: LintContext) -> None:
    """CP205: report on the later namespace's key, naming the earlier one it collides with.

    Templates only overlap with the same number of segments, and where one has a plain
    literal segment the other must have the same literal or a placeholder there; an
    index on (segment count, position, literal) finds those candidates, so a policy of
    hundreds of namespaces stays fast. ``can_overlap`` decides each candidate.
    """
    seen: list[tuple[str, KeyTemplate]] = []
    by_count: dict[int, set[int]] = defaultdict(set)
    literal_at: dict[tuple[int, int, str], set[int]] = defaultdict(set)
    wild_at: dict[tuple[int, int], set[int]] = defaultdict(set)
    for name, template in ctx.templates.items():
        count = len(template.segments)
        candidates: set[int] | None = None
        for pos, seg in enumerate(template.segments):
            if seg.is_literal:
                fits = literal_at.get((count, pos, seg.prefix), set()) | wild_at.get((count, pos), set())
                candidates = fits if candidates is None else candidates & fits
                if not candidates:
                    break
        clashes = [f"namespace {earlier} ({other.source!r})" for earlier, other in
                   (seen[i] for i in sorted(by_count[count] if candidates is None else candidates))
                   if template.can_overlap(other)]
        if clashes:
            ctx.report(
                "CP205",
                f"namespace {name}: key {template.source!r} can match the same keys as "
                f"{' and '.join(clashes)}",
                ctx.value("namespaces", name, "key"),
                "a key must belong to one namespace; add a distinct literal segment, "
                f"e.g. {name}:{template.source}")
        index = len(seen)
        seen.append((name, template))
        by_count[count].add(index)
        for pos, seg in enumerate(template.segments):
            if seg.is_literal:
                literal_at[(count, pos, seg.prefix)].add(index)
            else:
                wild_at[(count, pos)].add(index)
