"""Lint findings as SARIF 2.1.0, the format GitHub code scanning uploads.

Every registry rule is listed in ``tool.driver.rules`` (so a rule's help shows even
when it has no result); each result points at its rule by id and index. Paths are
relative URIs against ``%SRCROOT%`` when they lie under the working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cachectl import __version__
from cachectl.diagnostics import RULES, Severity
from cachectl.lint.report import LintReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://github.com/cachectl/cachectl#rules"


def _level(severity: Severity) -> str:
    return "error" if severity is Severity.ERROR else "warning"


def _location(path: str, root: Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_absolute():
        return {"uri": p.as_posix(), "uriBaseId": "%SRCROOT%"}
    try:
        return {"uri": p.relative_to(root).as_posix(), "uriBaseId": "%SRCROOT%"}
    except ValueError:
        return {"uri": p.as_uri()}


def sarif_document(report: LintReport, root: Path | None = None) -> dict[str, Any]:
    """The SARIF log (one run) for ``report``; ``root`` is the folder paths are relative to."""
    root = root or Path.cwd()
    codes = list(RULES)
    rules = [{
        "id": r.code,
        "name": r.name,
        "shortDescription": {"text": r.summary},
        "fullDescription": {"text": r.summary},
        "helpUri": f"{INFORMATION_URI}",
        "defaultConfiguration": {"level": _level(r.severity)},
        "properties": {"tags": ["cachectl", "policy"]},
    } for r in RULES.values()]
    results = []
    for d in report.diagnostics:
        text = d.message + (f" (hint: {d.hint})" if d.hint else "")
        results.append({
            "ruleId": d.code,
            "ruleIndex": codes.index(d.code),
            "level": _level(d.severity),
            "message": {"text": text},
            "locations": [{"physicalLocation": {
                "artifactLocation": _location(d.span.path, root),
                "region": {"startLine": d.span.line, "startColumn": d.span.col},
            }}],
            "partialFingerprints": {
                "cachectl/v1": f"{d.code}:{Path(d.span.path).as_posix()}:{d.message}"},
        })
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "cachectl",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": root.resolve().as_uri() + "/"}},
            "artifacts": [{"location": _location(f, root)} for f in report.files],
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    }
