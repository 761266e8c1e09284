"""Diagnostics: the small frozen record every policy finding is, and the rule registry.

A code is never renumbered or reused. Families: CP0xx syntax and schema, CP1xx TTL
and durations, CP2xx key templates, CP3xx thresholds, CP4xx environment and sources.
The registry feeds ``cachectl lint --list-rules``, the README table and SARIF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Span:
    """A 1-based position in a file."""

    path: str
    line: int = 1
    col: int = 1


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
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
    Rule("CP001", "yaml-syntax", E, "the file is not valid YAML (or not UTF-8 text)"),
    Rule("CP002", "duplicate-key", E, "a mapping has the same key twice"),
    Rule("CP003", "unknown-field", E, "a field the policy format does not know (typo?)"),
    Rule("CP004", "wrong-type", E, "a value of the wrong type"),
    Rule("CP005", "missing-field", E, "a required field is absent"),
    Rule("CP006", "unsupported-version", E, "the policy's version is not one this cachectl reads"),
    Rule("CP007", "document-too-large", E, "file too big, nested too deep, or an alias bomb"),
    Rule("CP008", "empty-policy", E, "the file is empty or not a mapping"),
    Rule("CP009", "unsupported-tag", E, "a YAML tag that would construct an object"),
    Rule("CP010", "invalid-namespace-name", E, "namespace names are letters, digits, _ and -"),
    Rule("CP011", "no-namespaces", W, "the policy declares no namespace"),
    # CP1xx: TTL and durations
    Rule("CP101", "invalid-duration", E, "a duration that cannot be parsed"),
    Rule("CP102", "non-positive-duration", E, "a TTL that is zero or negative"),
    Rule("CP103", "missing-ttl", E, "a namespace without a TTL and no default ttl"),
    Rule("CP104", "stale-exceeds-ttl", W, "stale window longer than the fresh TTL"),
    Rule("CP105", "stale-if-error-shorter-than-stale", E, "stale_if_error must be >= stale"),
    Rule("CP106", "jitter-too-large", E, "jitter must be below 100 %"),
    Rule("CP107", "jitter-out-of-proportion", W, "jitter above 50 % of the TTL"),
    Rule("CP108", "invalid-size", E, "a size that cannot be parsed or is not positive"),
    Rule("CP109", "invalid-ratio", E, "a ratio that cannot be parsed or is negative"),
    # CP2xx: key templates
    Rule("CP201", "unbalanced-braces", E, "a key template with unbalanced { }"),
    Rule("CP202", "empty-placeholder", E, "a {} placeholder without a name"),
    Rule("CP203", "duplicate-placeholder", E, "the same placeholder twice in one template"),
    Rule("CP204", "glob-characters", W, "literal * ? [ ] \\ in a template (escaped when scanning)"),
    Rule("CP205", "overlapping-templates", E, "two namespaces whose templates can match one key"),
    Rule("CP206", "invalid-template-segment", E, "an empty segment or two placeholders in one"),
    Rule("CP207", "unknown-placeholder-modifier", E, "a placeholder modifier other than :hash"),
    Rule("CP208", "whitespace-in-template", W, "whitespace or control characters in a template"),
    Rule("CP209", "invalid-key-prefix", E, "redis.key_prefix contains ':' glob characters or space"),
    Rule("CP210", "version-marker-without-version", W,
         "{version} in a template of a namespace without version: (an ordinary placeholder)"),
    Rule("CP211", "version-without-place", E,
         "version: set, but no {version} marker and no literal segment to put vN after"),
    Rule("CP212", "versions-overlap", E, "two versions of one namespace can claim the same key"),
    # CP3xx: thresholds
    Rule("CP301", "ratio-out-of-range", E, "a threshold ratio outside (0, 1]"),
    Rule("CP302", "latency-not-positive", E, "a latency threshold <= 0"),
    Rule("CP303", "critical-below-global", W, "critical_hit_rate lower than hit_rate"),
    Rule("CP304", "hot-latency-above-cached", W, "the hot p99 threshold is above the cached one"),
    Rule("CP305", "unreachable-threshold", W, "a hit-rate threshold of 100 % can never be met"),
    # CP4xx: environment and sources
    Rule("CP401", "unset-env-var", E, "${VAR} is not set and has no default"),
    Rule("CP402", "warm-source-missing", E, "a warm source file that does not exist"),
    Rule("CP403", "unknown-source-type", E, "a warm source type no installed plugin provides"),
    Rule("CP404", "warm-row-cannot-fill-template", E, "source rows lack a placeholder field"),
    Rule("CP405", "invalid-interpolation", E, "a malformed ${...} expression"),
    Rule("CP406", "invalid-redis-url", E, "redis.url is not a redis://, rediss:// or unix:// URL"),
    Rule("CP407", "secret-in-policy", W, "a password written into the policy instead of ${VAR}"),
    Rule("CP408", "unknown-codec", E, "compress.codec is not zstd, lz4 or zlib"),
    Rule("CP409", "codec-not-installed", W, "the codec's package is not installed here"),
    Rule("CP410", "invalid-compression-level", E, "compress.level outside the codec's range"),
)

RULES: dict[str, Rule] = {rule.code: rule for rule in _RULE_TABLE}


def make(code: str, message: str, span: Span, hint: str | None = None,
         severity: Severity | None = None) -> Diagnostic:
    """Build a diagnostic with the rule's default severity."""
    return Diagnostic(code, severity or RULES[code].severity, message, span, hint)


@dataclass
class DiagnosticSink:
    """Collects diagnostics while a policy is loaded or linted."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.items.append(make(code, message, span, hint))

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)
