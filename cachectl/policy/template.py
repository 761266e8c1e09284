"""Key templates: ``product:{id}`` -> render, exact match, SCAN glob, overlap.

A placeholder ``{name}`` stands for exactly one key segment: a non-empty value
without ``:``. A segment may carry literal text around one placeholder
(``v{n}.json``). ``{name:hash}`` stores a 16-hex-digit BLAKE2b digest of the
value instead, for free text (search queries).

A namespace with ``version: N`` puts N in its keys: where the template writes the
``{version}`` marker (``product:v{version}:{id}`` -> ``product:v2:{id}``), else as a
segment ``vN`` right after the template's first literal segment (``product:{id}`` ->
``product:v2:{id}``). ``versioned_source`` does that rewriting before parsing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cachectl.diagnostics import Code
from cachectl.errors import KeyParamError as KeyParamError  # its home is errors.py; kept importable here

GLOB_SPECIALS = "*?[]\\"
HASH_MODIFIER = "hash"
_HASH_LEN = 16
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VERSION_MARKER = "{version}"


class TemplateSyntaxError(ValueError):
    """A template that cannot be parsed; ``code`` is its lint rule."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def hash_value(value: str) -> str:
    """The stable digest ``{name:hash}`` stores: BLAKE2b, 8 bytes, lower-case hex."""
    return hashlib.blake2b(value.encode("utf-8"), digest_size=_HASH_LEN // 2).hexdigest()


def escape_glob(text: str) -> str:
    """Escape the characters Redis's glob matcher treats specially."""
    return "".join("\\" + ch if ch in GLOB_SPECIALS else ch for ch in text)


@dataclass(frozen=True)
class Segment:
    """One ``:``-separated part of a key: literal, or prefix + placeholder + suffix."""

    prefix: str
    placeholder: str | None = None
    modifier: str | None = None
    suffix: str = ""

    @property
    def is_literal(self) -> bool:
        return self.placeholder is None

    def regex(self) -> bytes:
        if self.placeholder is None:
            return re.escape(self.prefix.encode())
        body = rb"[0-9a-f]{16}" if self.modifier == HASH_MODIFIER else rb"[^:]+"
        return (re.escape(self.prefix.encode()) + b"(?P<" + self.placeholder.encode() + b">"
                + body + b")" + re.escape(self.suffix.encode()))

    def glob(self) -> str:
        if self.placeholder is None:
            return escape_glob(self.prefix)
        return escape_glob(self.prefix) + "*" + escape_glob(self.suffix)


def _parse_segment(text: str) -> Segment:
    if text == "":
        raise TemplateSyntaxError(Code.INVALID_TEMPLATE_SEGMENT,
                                  "empty key segment (two ':' in a row, or a ':' at an end)")
    if text.count("{") != text.count("}"):
        raise TemplateSyntaxError(Code.UNBALANCED_BRACES, f"unbalanced braces in segment {text!r}")
    if text.count("{") == 0:
        return Segment(text)
    if text.count("{") > 1:
        raise TemplateSyntaxError(
            Code.INVALID_TEMPLATE_SEGMENT,
            f"segment {text!r} holds more than one placeholder; separate them with ':'")
    start, end = text.index("{"), text.index("}")
    if end < start:
        raise TemplateSyntaxError(Code.UNBALANCED_BRACES, f"unbalanced braces in segment {text!r}")
    inner = text[start + 1:end]
    if inner.strip() == "":
        raise TemplateSyntaxError(Code.EMPTY_PLACEHOLDER, "empty placeholder {}; name it, e.g. {id}")
    name, _, modifier = inner.partition("|")
    return Segment(text[:start], name, modifier or None, text[end + 1:])


def _split_template(source: str) -> list[str]:
    """Split on ':' outside braces, so ``{query:hash}`` stays one segment."""
    # inside braces ':' introduces a modifier; normalise it to '|' for _parse_segment
    return [re.sub(r"\{([^{}]*):([^{}]*)\}", r"{\1|\2}", p) for p in _split_raw(source)]


def _split_raw(source: str) -> list[str]:
    """The segments as written, split on ':' outside braces."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in source:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise TemplateSyntaxError(Code.UNBALANCED_BRACES, "a '}' closes no '{'")
        if ch == ":" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise TemplateSyntaxError(Code.UNBALANCED_BRACES, "a '{' is never closed")
    parts.append("".join(current))
    return parts


def versioned_source(source: str, version: int | None) -> str:
    """The template with ``version`` written in: at ``{version}``, else after the first literal.

    Without a version the template is returned as written (``{version}`` then is an
    ordinary placeholder). Raises TemplateSyntaxError: CP203 for the marker twice,
    CP211 when there is no marker and no literal segment to put ``vN`` after.
    """
    if version is None:
        return source
    count = source.count(VERSION_MARKER)
    if count > 1:
        raise TemplateSyntaxError(Code.DUPLICATE_PLACEHOLDER, "the {version} marker appears twice")
    if count == 1:
        return source.replace(VERSION_MARKER, str(version))
    parts = _split_raw(source)
    for index, part in enumerate(parts):
        if "{" not in part and part:
            return ":".join([*parts[:index + 1], f"v{version}", *parts[index + 1:]])
    raise TemplateSyntaxError(
        Code.VERSION_WITHOUT_PLACE, "the template has no literal segment to put the version after; "
        "write the {version} marker where it belongs, e.g. product:v{version}:{id}")


# the segment after the key prefix under which cachectl keeps its own keys (the flush
# audit stream, revalidation locks, counters): no template may produce a key there
INTERNAL_SEGMENT = "cachectl"


class KeyTemplate:
    """A parsed key template, with the policy's key prefix in front."""

    def __init__(self, source: str, key_prefix: str = "") -> None:
        self.source = source
        self.key_prefix = key_prefix
        full = f"{key_prefix}:{source}" if key_prefix else source
        self.full = full
        segments = [_parse_segment(p) for p in _split_template(full)]
        names: list[str] = []
        for seg in segments:
            if seg.placeholder is None:
                continue
            if not _NAME_RE.match(seg.placeholder):
                raise TemplateSyntaxError(
                    Code.EMPTY_PLACEHOLDER,
                    f"placeholder name {seg.placeholder!r} must be letters, digits and _")
            if seg.modifier is not None and seg.modifier != HASH_MODIFIER:
                raise TemplateSyntaxError(
                    Code.UNKNOWN_PLACEHOLDER_MODIFIER,
                    f"unknown modifier {{{seg.placeholder}:{seg.modifier}}}; "
                    "the only modifier is :hash")
            if seg.placeholder in names:
                raise TemplateSyntaxError(
                    Code.DUPLICATE_PLACEHOLDER, f"placeholder {{{seg.placeholder}}} appears twice")
            names.append(seg.placeholder)
        self.segments: tuple[Segment, ...] = tuple(segments)
        self.placeholders: tuple[str, ...] = tuple(names)
        self._compiled: re.Pattern[bytes] | None = None  # compiled on first match (lint never needs it)
        self.glob: str = ":".join(s.glob() for s in segments)

    def __repr__(self) -> str:
        return f"KeyTemplate({self.full!r})"

    @property
    def internal_prefix(self) -> str:
        """``<key_prefix>:cachectl:``: cachectl's own keys, never a namespace's."""
        return f"{self.key_prefix}:{INTERNAL_SEGMENT}:" if self.key_prefix \
            else f"{INTERNAL_SEGMENT}:"

    @property
    def claims_internal_keys(self) -> bool:
        """Whether every key of the template falls in the internal space (a literal
        ``cachectl`` segment right after the prefix)."""
        index = 1 if self.key_prefix else 0
        if len(self.segments) <= index:
            return False
        seg = self.segments[index]
        return seg.placeholder is None and seg.prefix == INTERNAL_SEGMENT

    @property
    def regex(self) -> re.Pattern[bytes]:
        """The exact matcher, over the key's bytes."""
        if self._compiled is None:
            self._compiled = re.compile(b":".join(s.regex() for s in self.segments), re.DOTALL)
        return self._compiled

    @property
    def literal_prefix(self) -> str:
        """The fixed text every key of this template starts with."""
        out = []
        for seg in self.segments:
            out.append(seg.prefix)
            if seg.placeholder is not None:
                return ":".join(out)
        return ":".join(out)

    @property
    def has_glob_characters(self) -> bool:
        return any(ch in GLOB_SPECIALS for s in self.segments for ch in s.prefix + s.suffix)

    def render(self, params: Mapping[str, object]) -> str:
        """Fill the placeholders; raises KeyParamError naming a missing or bad value."""
        missing = [n for n in self.placeholders if n not in params]
        if missing:
            raise KeyParamError(
                f"key {self.source!r} needs {', '.join(missing)}; got "
                f"{', '.join(sorted(params)) or 'nothing'}")
        parts = []
        for seg in self.segments:
            if seg.placeholder is None:
                parts.append(seg.prefix)
                continue
            value = params[seg.placeholder]
            text = value if isinstance(value, str) else _scalar_text(seg.placeholder, value)
            if seg.modifier == HASH_MODIFIER:
                text = hash_value(text)
            elif text == "" or ":" in text:
                raise KeyParamError(
                    f"{seg.placeholder}={text!r} cannot be one key segment (empty or contains ':'); "
                    f"declare {{{seg.placeholder}:hash}} in the template for free text")
            parts.append(seg.prefix + text + seg.suffix)
        key = ":".join(parts)
        if key.startswith(self.internal_prefix):
            raise KeyParamError(
                f"{key!r} falls in cachectl's own key space ({self.internal_prefix}…: the "
                "flush audit stream, locks, counters); no namespace may write there")
        return key

    def match(self, key: bytes | str) -> dict[str, str] | None:
        """The placeholder values if ``key`` belongs to this template, else None."""
        raw = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
        m = self.regex.fullmatch(raw)
        if m is None:
            return None
        return {k: v.decode("utf-8", "backslashreplace") for k, v in m.groupdict().items()}

    def matches(self, key: bytes) -> bool:
        return self.regex.fullmatch(key) is not None

    def can_overlap(self, other: KeyTemplate) -> bool:
        """True when some key would match both templates."""
        if len(self.segments) != len(other.segments):
            return False
        return all(_segments_compatible(a, b) for a, b in zip(self.segments, other.segments,
                                                                   strict=True))


def _scalar_text(name: str, value: object) -> str:
    if isinstance(value, bool) or value is None or not isinstance(value, int | float | bytes):
        raise KeyParamError(f"{name}={value!r}: a key value must be a string or a number")
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _literal_fits(literal: str, seg: Segment) -> bool:
    if seg.modifier == HASH_MODIFIER and not seg.prefix and not seg.suffix:
        return re.fullmatch(r"[0-9a-f]{16}", literal) is not None
    return (literal.startswith(seg.prefix) and literal.endswith(seg.suffix)
            and len(literal) > len(seg.prefix) + len(seg.suffix))


def _segments_compatible(a: Segment, b: Segment) -> bool:
    if a.is_literal and b.is_literal:
        return a.prefix == b.prefix
    if a.is_literal:
        return _literal_fits(a.prefix, b)
    if b.is_literal:
        return _literal_fits(b.prefix, a)
    # two placeholders with literal affixes: some value fits both iff the prefixes are
    # prefix-compatible and the suffixes suffix-compatible (the filler is free)
    prefixes_ok = a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)
    suffixes_ok = a.suffix.endswith(b.suffix) or b.suffix.endswith(a.suffix)
    return prefixes_ok and suffixes_ok
