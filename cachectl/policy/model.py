"""The policy model: the YAML document as pydantic models, and the resolved Policy.

``PolicySpec`` mirrors the file (and is where the JSON Schema comes from);
``Policy`` is what the rest of cachectl uses: every namespace with its defaults
applied, durations in milliseconds, templates compiled, and the source position
of every node kept for diagnostics.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from cachectl.compression import LEVELS, POLICY_CODECS, Compression
from cachectl.diagnostics import Span
from cachectl.errors import UsageError
from cachectl.policy import units
from cachectl.policy.sources import source_options_schema
from cachectl.policy.template import KeyTemplate, versioned_source


def _duration(value: object) -> int:
    try:
        return units.parse_duration_ms(value)
    except units.UnitError as exc:
        raise PydanticCustomError("duration", str(exc)) from None


def _size(value: object) -> int:
    try:
        return units.parse_size_bytes(value)
    except units.UnitError as exc:
        raise PydanticCustomError("size", str(exc)) from None


def _ratio(value: object) -> float:
    try:
        return units.parse_ratio(value)
    except units.UnitError as exc:
        raise PydanticCustomError("ratio", str(exc)) from None


# JSON Schema fragments: what lint accepts, as far as a regular expression can say it
_UNITS = r"\s*(ms|s|m|h|d)?\s*$"
_ZERO = r"\s*0+(\.0+)?"
_DURATION_DOC = "A duration: 500ms, 30s, 5m, 1h, 1d, or a number of seconds."


def _duration_schema(positive: bool) -> dict[str, Any]:
    if positive:  # CP102: a ttl of zero or less
        return {"anyOf": [{"type": "string",
                           "pattern": rf"^(?!{_ZERO}{_UNITS})\s*\d+(\.\d+)?{_UNITS}"},
                          {"type": "number", "exclusiveMinimum": 0}],
                "description": _DURATION_DOC + " Above zero."}
    return {"anyOf": [{"type": "string", "pattern": rf"^\s*\d+(\.\d+)?{_UNITS}"},
                      {"type": "number", "minimum": 0}],
            "description": _DURATION_DOC + " Zero or more."}


def _ratio_schema(*, zero: bool, one: bool) -> dict[str, Any]:
    """0..1 with the ends included or not, as a number, "0.8" or "80%" (CP109, CP301, CP106)."""
    bounds: dict[str, Any] = {"minimum": 0} if zero else {"exclusiveMinimum": 0}
    bounds |= {"maximum": 1} if one else {"exclusiveMaximum": 1}
    not_zero = "" if zero else r"(?!\s*0*(\.0*)?\s*%?\s*$)"
    percent = r"(100(\.0+)?|\d{1,2}(\.\d+)?)" if one else r"\d{1,2}(\.\d+)?"
    fraction = r"(1(\.0+)?|0?\.\d+|0)" if one else r"(0?\.\d+|0)"
    return {"anyOf": [{"type": "number", **bounds},
                      {"type": "string", "pattern": rf"^{not_zero}\s*({percent}\s*%|{fraction})\s*$"}],
            "description": "A ratio: 0.8 or 80%."}


# validation is the same for each pair; the schema says what lint then requires
DurationMs = Annotated[int, BeforeValidator(_duration), WithJsonSchema(_duration_schema(False))]
TtlMs = Annotated[int, BeforeValidator(_duration), WithJsonSchema(_duration_schema(True))]
SizeBytes = Annotated[
    int,
    BeforeValidator(_size),
    WithJsonSchema({
        "anyOf": [
            {"type": "string",
             "pattern": r"^(?!\s*0+(\.0+)?\s*([KMG]i?B|B)?\s*$)\s*\d+(\.\d+)?\s*([KMG]i?B|B)?\s*$"},
            {"type": "integer", "minimum": 1},
        ],
        "description": "A size above zero: 512B, 64KiB, 1MiB, or an integer of bytes.",
    }),
]
Ratio = Annotated[  # thresholds: (0, 1]
    float, BeforeValidator(_ratio), WithJsonSchema(_ratio_schema(zero=False, one=True))]
JitterRatio = Annotated[  # [0, 1)
    float, BeforeValidator(_ratio), WithJsonSchema(_ratio_schema(zero=True, one=False))]

NAMESPACE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
# CP209; an empty prefix is no prefix
KEY_PREFIX_PATTERN = r"^(?![:])(?!.*[:]$)[^*?\[\]\\ \t\n]*$"
REDIS_URL_PATTERN = r"^(rediss?|unix)://"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSpec(_Spec):
    """Where the cache lives; ``--url`` and ``REDIS_URL`` take precedence."""

    url: str | None = Field(None, description="redis://, rediss:// (TLS) or unix:// URL.",
                            json_schema_extra={"pattern": REDIS_URL_PATTERN})
    key_prefix: str = Field("", description='Every key is "<key_prefix>:" + the rendered template.',
                            json_schema_extra={"pattern": KEY_PREFIX_PATTERN})
    cluster: bool = Field(False, description="Connect with Redis Cluster's client.")


class LatencySpec(_Spec):
    # CP302 in the schema only: lint names the rule, where a pydantic bound would say "wrong type"
    cached: float = Field(50.0, description="p99 read latency for cached data, in ms.",
                          json_schema_extra={"exclusiveMinimum": 0})
    hot: float = Field(10.0, description="p99 read latency for hot data, in ms.",
                       json_schema_extra={"exclusiveMinimum": 0})


class ThresholdsSpec(_Spec):
    """The service levels ``stats`` and ``bench`` judge against."""

    hit_rate: Ratio = Field(0.80, description="Minimum hit rate of every namespace.")
    critical_hit_rate: Ratio = Field(0.95, description="Minimum hit rate of critical namespaces.")
    latency_p99_ms: LatencySpec = Field(
        default_factory=LatencySpec, description="p99 read latency thresholds, in ms.")
    memory_used_ratio: Ratio = Field(0.70, description="Maximum used memory / maxmemory.")
    max_stale_ratio: Ratio = Field(
        0.20, description="Maximum share of hits served stale or fail-safe.")
    min_requests: int = Field(
        100, ge=0, description="Fewer requests than this in the window: too little to judge.")
    max_inconsistency: Ratio | None = Field(
        None, description="Maximum share of verified keys that differ from their source while "
        "fresh (cachectl verify); unset: 0 for critical namespaces, not judged for others.")


def _levels_schema(schema: dict[str, Any]) -> None:
    """CP410 in the schema: each codec's level range (compression.LEVELS)."""
    schema["allOf"] = [
        {"if": {"properties": {"codec": {"const": codec}}, "required": ["codec"]},
         "then": {"properties": {"level": {"anyOf": [
             {"type": "integer", "minimum": low, "maximum": high}, {"type": "string"},
             {"type": "null"}]}}}}
        for codec, (low, _, high) in LEVELS.items()]


class CompressSpec(_Spec):
    """Store values compressed, in a frame every reader recognises (docs/compression.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_levels_schema)

    codec: str = Field(
        description="zstd, lz4 or zlib (zstd and lz4: the compress extra); none: plain.",
        json_schema_extra={"enum": [*POLICY_CODECS, "none"]})
    min_bytes: SizeBytes = Field(256, description="Values smaller than this are stored plain.")
    level: int | None = Field(
        None, description="The codec's level; else its default (zstd 3, zlib 6, lz4 0).")


class DefaultsSpec(_Spec):
    """Values every namespace inherits unless it sets its own."""

    ttl: TtlMs | None = Field(None, description="Fresh lifetime.")
    stale: DurationMs = Field(0, description="Served stale while revalidated, after ttl.")
    stale_if_error: DurationMs | None = Field(
        None, description="Kept as a fail-safe when reloading fails; defaults to stale.")
    jitter: JitterRatio = Field(0.0, description="Random spread on ttl, e.g. 10%.")
    max_value_bytes: SizeBytes | None = Field(
        None, description="Largest value allowed, as stored (after compression).")
    compress: CompressSpec | None = Field(None, description="Compress every namespace's values.")


class SourceSpec(BaseModel):
    """A warm source; ``type`` picks the reader, the other fields are the reader's options."""

    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=source_options_schema)

    type: str = Field(description="jsonl, json, csv, sql, http, or a plugin's type.")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class WarmSpec(_Spec):
    source: SourceSpec = Field(description="The reader and its options (type, path, items…).")
    value: str | None = Field(None, description="Store this field of the row instead of the row.")
    encoding: Literal["json", "raw"] = Field("json", description="json, or raw for text/bytes.")


class NamespaceSpec(_Spec):
    """One kind of cached data."""

    key: str = Field(description='Key template, e.g. "product:{id}".')
    version: int | None = Field(
        None, ge=1, description="Key version; at the {version} marker, else vN after the "
        "template's first literal segment (product:v2:{id}). Bump it when the value's shape changes.")
    read_previous: bool = Field(
        False, description="On a miss, the library reads version N-1 once and, given a migrate "
        "callable for the namespace, stores the migrated value under N.")
    description: str | None = Field(None, description="Free text for the people reading it.")
    ttl: TtlMs | None = Field(None, description="Fresh lifetime; else defaults.ttl.")
    stale: DurationMs | None = Field(
        None, description="Served stale while revalidated, after ttl; else defaults.stale.")
    stale_if_error: DurationMs | None = Field(
        None, description="Fail-safe window when reloading fails (>= stale); else defaults.")
    jitter: JitterRatio | None = Field(
        None, description="Random spread on ttl (< 100 %); else defaults.")
    critical: bool = Field(False, description="Hit rate must exceed critical_hit_rate.")
    hot: bool = Field(False, description="Reads are judged against the hot latency threshold.")
    hit_rate: Ratio | None = Field(None, description="This namespace's own hit-rate threshold.")
    max_value_bytes: SizeBytes | None = Field(
        None, description="Largest value allowed, as stored; else defaults.max_value_bytes.")
    compress: CompressSpec | None = Field(
        None, description="Compress this namespace's values (replaces defaults.compress; "
        "codec: none stores them plain).")
    tags: list[str] = Field(
        default_factory=list, description="Labels; flush --tag acts on every namespace so tagged.")
    early_refresh: bool | float = Field(
        False, description="Probabilistic early refresh (XFetch); true or a beta > 0.")
    warm: WarmSpec | None = Field(None, description="Where cachectl warm reads seed rows from.")
    private: list[str] = Field(
        default_factory=list, description="Fields whose values are never printed (verify's "
        "differences name them, without their values).")


class TraceSpec(_Spec):
    """Record a hash-sampled access trace for ``cachectl model`` (docs/model.md)."""

    sample: Ratio = Field(0.01, description="Share of keys whose every access is recorded, e.g. 1%.")
    max_events: int = Field(
        2_000_000, ge=1, description="Events kept in Redis (the trace streams are capped near this).")


class PolicySpec(_Spec):
    """A cachectl policy file, version 1."""

    version: int = Field(description="Policy format version; 1.")
    redis: RedisSpec = Field(default_factory=RedisSpec, description="Where the cache lives.")
    thresholds: ThresholdsSpec = Field(
        default_factory=ThresholdsSpec, description="Service levels stats and bench judge against.")
    defaults: DefaultsSpec = Field(
        default_factory=DefaultsSpec, description="Values every namespace inherits.")
    namespaces: dict[str, NamespaceSpec] = Field(
        default_factory=dict, description="One entry per kind of cached data, by name.",
        json_schema_extra={"propertyNames": {"pattern": NAMESPACE_NAME_PATTERN}})
    trace: TraceSpec | None = Field(
        None, description="The library records a sampled access trace (off when absent).")


# --------------------------------------------------------------------------- resolved


@dataclass(frozen=True)
class SpanIndex:
    """Source positions of the document's nodes, by path (``("namespaces", "product", "ttl")``)."""

    path: str
    values: dict[tuple[str | int, ...], Span] = field(default_factory=dict)
    keys: dict[tuple[str | int, ...], Span] = field(default_factory=dict)
    # scalars whose text changed by ${VAR} interpolation, as written in the file
    raw: dict[tuple[str | int, ...], str] = field(default_factory=dict)

    def value(self, *path: str | int) -> Span:
        """Where the value at ``path`` is, or its nearest ancestor."""
        return self._find(self.values, path)

    def key(self, *path: str | int) -> Span:
        """Where the key naming ``path`` is (falls back to the value)."""
        if path in self.keys:
            return self.keys[path]
        return self._find(self.values, path)

    def _find(self, table: dict[tuple[str | int, ...], Span], path: tuple[str | int, ...]) -> Span:
        for end in range(len(path), -1, -1):
            span = table.get(path[:end])
            if span is not None:
                return span
        return Span(self.path, 1, 1)


@dataclass(frozen=True)
class Thresholds:
    hit_rate: float
    critical_hit_rate: float
    latency_cached_p99_ms: float
    latency_hot_p99_ms: float
    memory_used_ratio: float
    max_stale_ratio: float
    min_requests: int
    max_inconsistency: float | None = None

    def inconsistency_limit(self, critical: bool) -> float | None:
        """verify's limit for a namespace: the policy's, else 0 when critical, else None."""
        if self.max_inconsistency is not None:
            return self.max_inconsistency
        return 0.0 if critical else None


@dataclass(frozen=True)
class TraceSettings:
    sample: float  # (0, 1]: the share of keys traced
    max_events: int


@dataclass(frozen=True)
class Namespace:
    """A namespace with every default applied; durations in milliseconds."""

    name: str
    template: KeyTemplate
    ttl_ms: int
    stale_ms: int
    stale_if_error_ms: int
    jitter: float
    critical: bool
    hot: bool
    hit_rate: float
    max_value_bytes: int | None
    tags: tuple[str, ...]
    early_refresh_beta: float | None
    warm: WarmSpec | None
    description: str | None = None
    version: int | None = None
    read_previous: bool = False
    key_source: str = ""  # the template as written, before the version is put in
    compress: Compression | None = None  # None: values are stored plain
    private: tuple[str, ...] = ()  # fields whose values are never printed

    @property
    def template_source(self) -> str:
        """The template as written in the policy (``template.source`` has the version in)."""
        return self.key_source or self.template.source

    def template_at(self, version: int | None) -> KeyTemplate:
        """This namespace's template for another version (raises TemplateSyntaxError)."""
        if version == self.version:
            return self.template
        return KeyTemplate(versioned_source(self.template_source, version), self.template.key_prefix)

    @property
    def grace_ms(self) -> int:
        """G = max(stale, stale_if_error): how long a key outlives its fresh TTL."""
        return max(self.stale_ms, self.stale_if_error_ms)

    def key(self, **params: object) -> str:
        """The full Redis key for these placeholder values (raises KeyParamError)."""
        return self.template.render(params)


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy."""

    version: int
    redis_url: str | None
    key_prefix: str
    cluster: bool
    thresholds: Thresholds
    namespaces: dict[str, Namespace]
    spans: SpanIndex
    source_path: Path | None = None
    spec: PolicySpec | None = field(default=None, compare=False, repr=False)
    trace: TraceSettings | None = None  # None: the library records no trace

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the policy (warm sources) are resolved against."""
        return self.source_path.parent if self.source_path else Path.cwd()

    def __iter__(self) -> Iterator[Namespace]:
        return iter(self.namespaces.values())

    def namespace(self, name: str) -> Namespace:
        """The namespace called ``name``; UsageError with a did-you-mean otherwise."""
        try:
            return self.namespaces[name]
        except KeyError:
            raise UsageError(
                f"no namespace {name!r} in the policy",
                hint=did_you_mean(name, self.namespaces) or
                f"namespaces: {', '.join(self.namespaces) or '(none)'}",
            ) from None

    def with_tag(self, tag: str) -> list[Namespace]:
        """Namespaces carrying ``tag``; UsageError when none does."""
        found = [ns for ns in self if tag in ns.tags]
        if not found:
            tags = sorted({t for ns in self for t in ns.tags})
            raise UsageError(f"no namespace carries tag {tag!r}",
                             hint=did_you_mean(tag, tags) or f"tags: {', '.join(tags) or '(none)'}")
        return found

    @property
    def internal_prefix(self) -> str:
        """Where cachectl keeps its own keys (counters, audit stream, locks)."""
        from cachectl.policy.template import INTERNAL_SEGMENT

        return f"{self.key_prefix}:{INTERNAL_SEGMENT}" if self.key_prefix else INTERNAL_SEGMENT


def did_you_mean(word: str, choices: Any) -> str | None:
    """``did you mean 'x'?`` for the closest choice, or None."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
