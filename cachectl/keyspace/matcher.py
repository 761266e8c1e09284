"""Which namespace a key belongs to: the compiled matcher, its Lua twin, and key shapes.

A key is attributed to exactly one namespace: the first, in policy order, whose
exact matcher accepts it; SCAN's MATCH glob only narrows the search.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from cachectl.policy.model import Namespace, Policy
from cachectl.policy.template import HASH_MODIFIER, KeyTemplate


class NamespaceMatcher:
    """Attributes keys to namespaces with one compiled alternation."""

    def __init__(self, namespaces: Iterable[Namespace]) -> None:
        self.namespaces: tuple[Namespace, ...] = tuple(namespaces)
        self._by_group: dict[str, Namespace] = {}
        parts = []
        for i, ns in enumerate(self.namespaces):
            group = f"n{i}"
            self._by_group[group] = ns
            body = re.sub(rb"\(\?P<[A-Za-z_][A-Za-z0-9_]*>", b"(?:", ns.template.regex.pattern)
            parts.append(b"(?P<" + group.encode() + b">" + body + b")")
        self._regex = re.compile(b"|".join(parts), re.DOTALL) if parts else None
        # cachectl's own keys are no namespace's, whatever a template would match
        self._internal = tuple({ns.template.internal_prefix.encode() for ns in self.namespaces})

    @classmethod
    def from_policy(cls, policy: Policy) -> NamespaceMatcher:
        return cls(policy.namespaces.values())

    def namespace_of(self, key: bytes) -> Namespace | None:
        """The namespace owning ``key``, or None."""
        if self._regex is None or key.startswith(self._internal):
            return None
        m = self._regex.fullmatch(key)
        if m is None or m.lastgroup is None:
            return None
        return self._by_group[m.lastgroup]


def lua_pattern(template: KeyTemplate) -> str:
    """The template as an anchored Lua pattern that accepts exactly what ``template.regex`` does."""
    def lit(text: str) -> str:
        # every non-alphanumeric byte is escaped with %; Lua then takes it literally
        return "".join(ch if ch.isascii() and ch.isalnum() else "%" + ch for ch in text)

    parts = []
    for seg in template.segments:
        if seg.placeholder is None:
            parts.append(lit(seg.prefix))
        else:
            body = "[0-9a-f]" * 16 if seg.modifier == HASH_MODIFIER else "[^:]+"
            parts.append(lit(seg.prefix) + body + lit(seg.suffix))
    return "^" + ":".join(parts) + "$"


_VARIABLE_SEGMENT = re.compile(rb"[^A-Za-z_\-.]")


def key_shape(key: bytes) -> str:
    """A key's shape: segments with digits, odd bytes or over 40 bytes become ``*``.

    ``order:1234:items`` -> ``order:*:items``. Mirrors ``shape_of`` in SURVEY_LUA.
    """
    parts = [b"*" if len(seg) > 40 or _VARIABLE_SEGMENT.search(seg) else seg
             for seg in key.split(b":")]
    return b":".join(parts).decode("utf-8", "backslashreplace")


def glob_matcher(pattern: str) -> Callable[[bytes], bool]:
    """A client-side matcher for a Redis glob (sampled estimates, the --pattern guard)."""
    # translate per character so the sample agrees with SCAN MATCH on ordinary patterns
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        else:
            out.append(re.escape(ch))
        i += 1
    rx = re.compile(("".join(out)).encode("utf-8"), re.DOTALL)
    return lambda key: rx.fullmatch(key) is not None
