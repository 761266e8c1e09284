"""Diagnostics: the small frozen record every policy finding is, and the rule registry.

A code is never renumbered or reused. Families: CP0xx syntax and schema, CP1xx TTL
and durations, CP2xx key templates, CP3xx thresholds, CP4xx environment and sources.
Code refers to rules by ``Code`` members (a typo fails at import and in mypy, not when
the rule fires). Codes run on without gaps within a family; a rule that is removed keeps
its member, listed in ``RETIRED``, so its number is never given again (a test holds both).
The registry feeds ``cachectl lint --list-rules``, the rules table in docs/lint.md and SARIF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum, unique


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Span:
    """A 1-based position in a file."""

    path: str
    line: int = 1
    col: int = 1


@unique  # a number given twice fails at import
class Code(StrEnum):
    """Every rule code ever given: refer to a rule by its member, never by a string."""

    # CP0xx: syntax and schema
    YAML_SYNTAX = "CP001"
    DUPLICATE_KEY = "CP002"
    UNKNOWN_FIELD = "CP003"
    WRONG_TYPE = "CP004"
    MISSING_FIELD = "CP005"
    UNSUPPORTED_VERSION = "CP006"
    DOCUMENT_TOO_LARGE = "CP007"
    EMPTY_POLICY = "CP008"
    UNSUPPORTED_TAG = "CP009"
    INVALID_NAMESPACE_NAME = "CP010"
    NO_NAMESPACES = "CP011"
    # CP1xx: TTL and durations
    INVALID_DURATION = "CP101"
    NON_POSITIVE_DURATION = "CP102"
    MISSING_TTL = "CP103"
    STALE_EXCEEDS_TTL = "CP104"
    STALE_IF_ERROR_SHORTER_THAN_STALE = "CP105"
    JITTER_TOO_LARGE = "CP106"
    JITTER_OUT_OF_PROPORTION = "CP107"
    INVALID_SIZE = "CP108"
    INVALID_RATIO = "CP109"
    TTL_BEYOND_REDIS = "CP110"
    # CP2xx: key templates
    UNBALANCED_BRACES = "CP201"
    EMPTY_PLACEHOLDER = "CP202"
    DUPLICATE_PLACEHOLDER = "CP203"
    GLOB_CHARACTERS = "CP204"
    OVERLAPPING_TEMPLATES = "CP205"
    INVALID_TEMPLATE_SEGMENT = "CP206"
    UNKNOWN_PLACEHOLDER_MODIFIER = "CP207"
    WHITESPACE_IN_TEMPLATE = "CP208"
    INVALID_KEY_PREFIX = "CP209"
    VERSION_MARKER_WITHOUT_VERSION = "CP210"
    VERSION_WITHOUT_PLACE = "CP211"
    VERSIONS_OVERLAP = "CP212"
    READ_PREVIOUS_WITHOUT_PREVIOUS_VERSION = "CP213"
    RESERVED_KEY_SPACE = "CP214"
    # CP3xx: thresholds
    RATIO_OUT_OF_RANGE = "CP301"
    LATENCY_NOT_POSITIVE = "CP302"
    CRITICAL_BELOW_GLOBAL = "CP303"
    HOT_LATENCY_ABOVE_CACHED = "CP304"
    UNREACHABLE_THRESHOLD = "CP305"
    # CP4xx: environment and sources
    UNSET_ENV_VAR = "CP401"
    WARM_SOURCE_MISSING = "CP402"
    UNKNOWN_SOURCE_TYPE = "CP403"
    WARM_ROW_CANNOT_FILL_TEMPLATE = "CP404"
    INVALID_INTERPOLATION = "CP405"
    INVALID_REDIS_URL = "CP406"
    SECRET_IN_POLICY = "CP407"  # noqa: S105 (a rule code, not a password)
    UNKNOWN_CODEC = "CP408"
    CODEC_NOT_INSTALLED = "CP409"
    INVALID_COMPRESSION_LEVEL = "CP410"
    LOOKUP_PARAMS_MISMATCH = "CP411"
    INVALID_SOURCE_OPTION = "CP412"


@dataclass(frozen=True)
class Rule:
    code: Code
    name: str = field(init=False)  # kebab-case, from the member: Code.YAML_SYNTAX -> yaml-syntax
    severity: Severity
    summary: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.code.name.lower().replace("_", "-"))


@dataclass(frozen=True)
class Diagnostic:
    code: Code
    severity: Severity
    message: str
    span: Span
    hint: str | None = None

    @property
    def rule(self) -> Rule:
        return RULES[self.code]

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.path, self.span.line, self.span.col, self.code)


E, W = Severity.ERROR, Severity.WARNING

_RULE_TABLE: tuple[Rule, ...] = (
    # CP0xx: syntax and schema
    Rule(Code.YAML_SYNTAX, E, "the file is not valid YAML (or not UTF-8 text)"),
    Rule(Code.DUPLICATE_KEY, E, "a mapping has the same key twice"),
    Rule(Code.UNKNOWN_FIELD, E, "a field the policy format does not know (typo?)"),
    Rule(Code.WRONG_TYPE, E, "a value of the wrong type"),
    Rule(Code.MISSING_FIELD, E, "a required field is absent"),
    Rule(Code.UNSUPPORTED_VERSION, E, "the policy's version is not one this cachectl reads"),
    Rule(Code.DOCUMENT_TOO_LARGE, E, "file too big, nested too deep, or an alias bomb"),
    Rule(Code.EMPTY_POLICY, E, "the file is empty or not a mapping"),
    Rule(Code.UNSUPPORTED_TAG, E, "a YAML tag that would construct an object"),
    Rule(Code.INVALID_NAMESPACE_NAME, E, "namespace names are letters, digits, _ and -"),
    Rule(Code.NO_NAMESPACES, W, "the policy declares no namespace"),
    # CP1xx: TTL and durations
    Rule(Code.INVALID_DURATION, E, "a duration that cannot be parsed"),
    Rule(Code.NON_POSITIVE_DURATION, E, "a TTL that is zero or negative"),
    Rule(Code.MISSING_TTL, E, "a namespace without a TTL and no default ttl"),
    Rule(Code.STALE_EXCEEDS_TTL, W, "stale window longer than the fresh TTL"),
    Rule(Code.STALE_IF_ERROR_SHORTER_THAN_STALE, E, "stale_if_error must be >= stale"),
    Rule(Code.JITTER_TOO_LARGE, E, "jitter must be below 100 %"),
    Rule(Code.JITTER_OUT_OF_PROPORTION, W, "jitter above 50 % of the TTL"),
    Rule(Code.INVALID_SIZE, E, "a size that cannot be parsed or is not positive"),
    Rule(Code.INVALID_RATIO, E, "a ratio that cannot be parsed or is negative"),
    Rule(Code.TTL_BEYOND_REDIS, E, "a TTL (with jitter and grace) longer than Redis accepts"),
    # CP2xx: key templates
    Rule(Code.UNBALANCED_BRACES, E, "a key template with unbalanced { }"),
    Rule(Code.EMPTY_PLACEHOLDER, E, "a {} placeholder without a name"),
    Rule(Code.DUPLICATE_PLACEHOLDER, E, "the same placeholder twice in one template"),
    Rule(Code.GLOB_CHARACTERS, W, "literal * ? [ ] \\ in a template (escaped when scanning)"),
    Rule(Code.OVERLAPPING_TEMPLATES, E, "two namespaces whose templates can match one key"),
    Rule(Code.INVALID_TEMPLATE_SEGMENT, E, "an empty segment or two placeholders in one"),
    Rule(Code.UNKNOWN_PLACEHOLDER_MODIFIER, E, "a placeholder modifier other than :hash"),
    Rule(Code.WHITESPACE_IN_TEMPLATE, W, "whitespace or control characters in a template"),
    Rule(Code.INVALID_KEY_PREFIX, E, "redis.key_prefix contains ':' glob characters or space"),
    Rule(Code.VERSION_MARKER_WITHOUT_VERSION, W,
         "{version} in a template of a namespace without version: (an ordinary placeholder)"),
    Rule(Code.VERSION_WITHOUT_PLACE, E,
         "version: set, but no {version} marker and no literal segment to put vN after"),
    Rule(Code.VERSIONS_OVERLAP, E, "two versions of one namespace can claim the same key"),
    Rule(Code.READ_PREVIOUS_WITHOUT_PREVIOUS_VERSION, W,
         "read_previous: true on a namespace below version 2 (there is no N-1 to read)"),
    Rule(Code.RESERVED_KEY_SPACE, E,
         "a template whose keys fall in cachectl's own <prefix>:cachectl: space"),
    # CP3xx: thresholds
    Rule(Code.RATIO_OUT_OF_RANGE, E, "a threshold ratio outside (0, 1]"),
    Rule(Code.LATENCY_NOT_POSITIVE, E, "a latency threshold <= 0"),
    Rule(Code.CRITICAL_BELOW_GLOBAL, W, "critical_hit_rate lower than hit_rate"),
    Rule(Code.HOT_LATENCY_ABOVE_CACHED, W, "the hot p99 threshold is above the cached one"),
    Rule(Code.UNREACHABLE_THRESHOLD, W, "a hit-rate threshold of 100 % can never be met"),
    # CP4xx: environment and sources
    Rule(Code.UNSET_ENV_VAR, E, "${VAR} is not set and has no default"),
    Rule(Code.WARM_SOURCE_MISSING, E, "a warm source file that does not exist"),
    Rule(Code.UNKNOWN_SOURCE_TYPE, E, "a warm source type no installed plugin provides"),
    Rule(Code.WARM_ROW_CANNOT_FILL_TEMPLATE, E, "source rows lack a placeholder field"),
    Rule(Code.INVALID_INTERPOLATION, E, "a malformed ${...} expression"),
    Rule(Code.INVALID_REDIS_URL, E, "redis.url is not a redis://, rediss:// or unix:// URL"),
    Rule(Code.SECRET_IN_POLICY, W, "a password written into the policy instead of ${VAR}"),
    Rule(Code.UNKNOWN_CODEC, E, "compress.codec is not zstd, lz4 or zlib"),
    Rule(Code.CODEC_NOT_INSTALLED, W, "the codec's package is not installed here"),
    Rule(Code.INVALID_COMPRESSION_LEVEL, E, "compress.level outside the codec's range"),
    Rule(Code.LOOKUP_PARAMS_MISMATCH, E,
         "a source's lookup does not take exactly the key template's placeholders"),
    Rule(Code.INVALID_SOURCE_OPTION, E,
         "a built-in source's number that cannot work (retries -1, timeout 0, size 'ten')"),
)

RULES: dict[Code, Rule] = {rule.code: rule for rule in _RULE_TABLE}
# codes whose rule was removed: they keep their member so the number is never reused
RETIRED: frozenset[Code] = frozenset()


def make(code: Code, message: str, span: Span, hint: str | None = None,
         severity: Severity | None = None) -> Diagnostic:
    """Build a diagnostic with the rule's default severity."""
    return Diagnostic(code, severity or RULES[code].severity, message, span, hint)


@dataclass
class DiagnosticSink:
    """Collects diagnostics while a policy is loaded or linted."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, code: Code, message: str, span: Span, hint: str | None = None) -> None:
        self.items.append(make(code, message, span, hint))

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)
