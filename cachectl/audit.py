"""Audit the live keyspace against the policy: findings with counts and example keys.

Errors (exit 1): keys without a TTL, TTLs longer than ttl·(1+jitter)+grace allows,
values over ``max_value_bytes`` (their stored size: compressed, when they are). Warnings:
keys that match no namespace; a namespace stored plain whose values are large and would
compress well (judged on a sample of its values, cachectl.compressibility). Info: the
biggest keys. One exact survey (every key measured) feeds every other finding.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from cachectl import compression
from cachectl.compressibility import estimate_compression
from cachectl.connection import ConnectionSettings, redis_errors
from cachectl.freshness import ttl_bounds_ms
from cachectl.inspect import NodeRow, node_rows
from cachectl.keyspace import KeyspaceSurvey, survey_keyspace
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Policy
from cachectl.policy.units import format_duration_ms, format_size_bytes
from cachectl.progress import ProgressCallback, no_progress

LARGE_VALUE_BYTES = 512  # mean memory per key from which audit judges compression
COMPRESSIBLE_SAMPLE = 300  # values read per such namespace


class Severity(StrEnum):
    """A finding's weight: errors fail the audit (exit 1), the others only inform."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class FindingCode(StrEnum):
    """A finding's stable code (its JSON ``code``): refer to it by member, never by string."""

    NO_TTL = "no-ttl"
    TTL_TOO_LONG = "ttl-too-long"
    VALUE_TOO_BIG = "value-too-big"
    UNMATCHED = "unmatched"
    COMPRESSIBLE = "compressible"
    BIG_KEY = "big-key"


@dataclass(frozen=True)
class Example:
    """One key behind a finding, with its figure (PTTL ms, bytes) when it has one."""

    key: bytes
    value: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"key": self.key.decode("utf-8", "backslashreplace")}
        if self.value is not None:
            doc["value"] = self.value
        return doc


@dataclass(frozen=True)
class Finding:
    """One finding. ``limit``: the bound crossed (ms or bytes); for compressible, the saving."""

    code: FindingCode
    severity: Severity
    namespace: str | None
    count: int
    message: str
    hint: str | None
    examples: tuple[Example, ...]
    limit: int | None = None  # the bound that was crossed (ms or bytes)


@dataclass(frozen=True)
class AuditReport:
    findings: tuple[Finding, ...]
    scanned_keys: int
    namespaces: int
    expired_during_scan: int
    denied_keys: int
    nodes: tuple[NodeRow, ...]
    elapsed_s: float
    method: str

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        return self.errors == 0


def audit_keyspace(
    client: Any,
    policy: Policy,
    settings: ConnectionSettings,
    *,
    top: int = 10,
    examples: int = 5,
    limiter: RateLimiter | None = None,
    on_progress: ProgressCallback = no_progress,
    clock: Callable[[], float] = time.perf_counter,
    use_lua: bool = True,
) -> AuditReport:
    """Scan every key once and judge it against its namespace; RedisUnavailableError on failure."""
    with redis_errors(settings):
        survey = survey_keyspace(client, policy, top=top, examples=examples, limiter=limiter,
                                 on_progress=on_progress, clock=clock, rng=random.Random(0),
                                 use_lua=use_lua)
    report = report_from_survey(survey, policy, top=top)
    more = compressible(client, policy, survey, settings, limiter, on_progress)
    if not more:
        return report
    return replace(report, findings=_ranked([*report.findings, *more]))


def compressible(client: Any, policy: Policy, survey: KeyspaceSurvey,
                 settings: ConnectionSettings, limiter: RateLimiter | None,
                 on_progress: ProgressCallback = no_progress) -> list[Finding]:
    """Warnings for namespaces stored plain whose values are large (LARGE_VALUE_BYTES of
    memory per key on average) and would save WORTH_IT of their memory compressed with the
    default codec (zstd, else zlib), judged on COMPRESSIBLE_SAMPLE values of each."""
    large = [t.name for t in survey.namespaces
             if policy.namespaces[t.name].compress is None and t.keys
             and t.memory_bytes / t.keys >= LARGE_VALUE_BYTES]
    if not large:
        return []
    codec = "zstd" if compression.missing_package("zstd") is None else "zlib"
    report = estimate_compression(
        client, policy, settings, sample=COMPRESSIBLE_SAMPLE, namespaces=large,
        candidates=((codec, compression.default_level(codec)),), limiter=limiter,
        rng=random.Random(0), on_progress=on_progress)
    found = []
    for ns in report.namespaces:
        c = ns.recommended
        if c is None:
            continue
        found.append(Finding(
            FindingCode.COMPRESSIBLE, Severity.WARNING, ns.namespace, ns.keys,
            f"{ns.namespace} stores its values plain; {codec} would save "
            f"{format_size_bytes(c.saved_bytes)} ± {format_size_bytes(c.saved_margin_bytes)} "
            f"({c.saved_share:.0%} of their memory, ratio {c.ratio:.1f}x)",
            f"add compress: {{codec: {codec}, min_bytes: {c.min_bytes}B}} to the namespace; "
            f"`cachectl inspect --compression -n {ns.namespace}` compares codecs and levels",
            (), limit=c.saved_bytes))
    return found


def _ranked(found: list[Finding]) -> tuple[Finding, ...]:
    """Errors first, then warnings, then information; each by count."""
    rank = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    return tuple(sorted(found, key=lambda f: (
        rank.get(f.severity, 3), -f.count if f.code is not FindingCode.BIG_KEY else 0, f.namespace or "",
        f.code)))


def report_from_survey(survey: KeyspaceSurvey, policy: Policy, *, top: int = 10) -> AuditReport:
    """The findings of an exact survey, errors first, then by count."""
    found: list[Finding] = []
    for t in survey.namespaces:
        ns = policy.namespaces[t.name]
        high = ttl_bounds_ms(ns)[1]
        if t.no_ttl:
            found.append(Finding(
                FindingCode.NO_TTL, Severity.ERROR, t.name, t.no_ttl,
                f"{t.no_ttl} key(s) of {t.name} have no TTL",
                "a cache key without expiry is never refreshed or evicted by age; "
                "`cachectl flush` them or set a TTL in the writer",
                tuple(Example(k) for k in t.examples_no_ttl)))
        if t.ttl_too_long:
            found.append(Finding(
                FindingCode.TTL_TOO_LONG, Severity.ERROR, t.name, t.ttl_too_long,
                f"{t.ttl_too_long} key(s) of {t.name} have a TTL above the "
                f"{format_duration_ms(high)} the policy allows (ttl·(1+jitter)+grace)",
                "some writer does not use the policy's TTL; find it by the example keys",
                tuple(Example(k, v) for k, v in t.examples_ttl_too_long), limit=high))
        if t.oversize and ns.max_value_bytes:
            found.append(Finding(
                FindingCode.VALUE_TOO_BIG, Severity.ERROR, t.name, t.oversize,
                f"{t.oversize} value(s) of {t.name} exceed max_value_bytes "
                f"({format_size_bytes(ns.max_value_bytes)})",
                "big values slow every read of them; split or compress them, or raise "
                "max_value_bytes in the policy",
                tuple(Example(k, v) for k, v in t.examples_oversize), limit=ns.max_value_bytes))
    for shape in survey.unmatched:
        found.append(Finding(
            FindingCode.UNMATCHED, Severity.WARNING, None, shape.keys,
            f"{shape.keys} key(s) like {shape.pattern} match no namespace "
            f"({format_size_bytes(shape.memory_bytes)})",
            "add a namespace for them to the policy, or remove them",
            (Example(shape.example),)))
    if top > 0 and survey.biggest:
        found.append(Finding(
            FindingCode.BIG_KEY, Severity.INFO, None, len(survey.biggest),
            f"the {len(survey.biggest)} biggest key(s) by MEMORY USAGE", None,
            tuple(Example(b.key, b.memory_bytes) for b in survey.biggest)))
    return AuditReport(
        findings=_ranked(found), scanned_keys=survey.scanned, namespaces=len(survey.namespaces),
        expired_during_scan=survey.gone, denied_keys=survey.denied, nodes=node_rows(survey),
        elapsed_s=survey.elapsed_s, method=survey.method)
