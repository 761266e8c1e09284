"""CP2xx rules on key templates: glob characters, whitespace, overlapping namespaces, versions."""

from __future__ import annotations

import unicodedata
from collections import defaultdict

from cachectl.diagnostics import Code
from cachectl.lint.context import LintContext
from cachectl.policy.model import NamespaceSpec
from cachectl.policy.template import (
    GLOB_SPECIALS,
    VERSION_MARKER,
    KeyTemplate,
    TemplateSyntaxError,
    versioned_source,
)


def check(ctx: LintContext) -> None:
    for name, ns in ctx.namespaces():
        at = ctx.value("namespaces", name, "key")
        bad = sorted({ch for ch in ns.key if _is_space_or_control(ch)})
        if bad:
            shown = ", ".join(repr(ch) for ch in bad)
            ctx.report(Code.WHITESPACE_IN_TEMPLATE,
                       f"namespace {name}: key {ns.key!r} holds whitespace or control "
                       f"characters ({shown})", at,
                       "keys with spaces are hard to type in redis-cli and to SCAN; use _ or -")
        template = ctx.templates.get(name)
        if template is None:
            continue
        if template.claims_internal_keys:
            ctx.report(Code.RESERVED_KEY_SPACE,
                       f"namespace {name}: key {ns.key!r} falls in cachectl's own key space "
                       f"({template.internal_prefix}…), where the flush audit stream, locks "
                       "and counters live", at, "rename its first segment, e.g. key: "
                       f"{ns.key.replace('cachectl', 'app', 1)!r}")
        # the key prefix's own segments come first; CP209 judges those
        prefix_segments = len(template.key_prefix.split(":")) if template.key_prefix else 0
        chars = sorted({ch for seg in template.segments[prefix_segments:]
                        for ch in seg.prefix + seg.suffix if ch in GLOB_SPECIALS})
        if chars:
            ctx.report(Code.GLOB_CHARACTERS, f"namespace {name}: key {ns.key!r} holds the glob characters "
                       f"{' '.join(chars)}", at,
                       "cachectl escapes them when scanning, but redis-cli KEYS/SCAN users will "
                       "not; prefer letters, digits, _ - . and :")
        _versions(ctx, name, ns, template)
    _overlaps(ctx)


def _versions(ctx: LintContext, name: str, ns: NamespaceSpec, template: KeyTemplate) -> None:
    """CP210 a marker without a version; CP212 two versions whose keys can be confused."""
    at = ctx.value("namespaces", name, "key")
    if ns.read_previous and (ns.version or 0) < 2:
        ctx.report(Code.READ_PREVIOUS_WITHOUT_PREVIOUS_VERSION,
                   f"namespace {name}: read_previous is set but the namespace is at "
                   f"version {ns.version or '(none)'}, so there is no version N-1 to read",
                   ctx.value("namespaces", name, "read_previous"),
                   "set version: 2 (or more) when bumping, or drop read_previous")
    if ns.version is None:
        if VERSION_MARKER in ns.key:
            ctx.report(Code.VERSION_MARKER_WITHOUT_VERSION,
                       f"namespace {name}: key {ns.key!r} holds {VERSION_MARKER} but the "
                       "namespace sets no version, so it is an ordinary placeholder", at,
                       f"add version: 1 to namespace {name}, or rename the placeholder")
        return
    for other in _versions_to_compare(ns.version):
        try:
            candidate = KeyTemplate(versioned_source(ns.key, other), template.key_prefix)
        except TemplateSyntaxError:
            return
        if template.can_overlap(candidate):
            ctx.report(Code.VERSIONS_OVERLAP, f"namespace {name}: key {ns.key!r} at version {ns.version} "
                       f"({template.source!r}) can match keys of version {other} "
                       f"({candidate.source!r})", ctx.value("namespaces", name, "version"),
                       "keep the version apart from placeholders, e.g. product:v{version}:{id}")
            return


def _versions_to_compare(version: int) -> list[int]:
    """The neighbours, and the versions whose digits extend N's (2 vs 12, 20..29): the only
    ones a placeholder beside the marker could absorb the difference of."""
    width = 10 ** len(str(version))
    found = [version - 1, version + 1, width + version]
    found += [version * 10 + digit for digit in range(10)]
    return [v for v in found if v >= 1 and v != version]


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
                Code.OVERLAPPING_TEMPLATES,
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
