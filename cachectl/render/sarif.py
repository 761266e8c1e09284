"""Lint findings as SARIF 2.1.0, the format GitHub code scanning uploads.

Every registry rule is listed in ``tool.driver.rules`` (so a rule's help shows even
when it has no result); each result points at its rule by id and index. Paths are
percent-encoded relative references against ``%SRCROOT%`` (``a b.yaml`` is
``a%20b.yaml``, ``p%41.yaml`` is ``p%2541.yaml``, ``#`` and ``:`` are escaped too) when
they lie under the root, else absolute ``file:`` URIs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cachectl import __version__
from cachectl.diagnostics import RULES, Severity
from cachectl.lint.report import LintReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://github.com/cachectl/cachectl#rules"


def _level(severity: Severity) -> str:
    return "error" if severity is Severity.ERROR else "warning"


def _location(path: str, root: Path) -> dict[str, Any]:
    absolute = Path(os.path.abspath(path))  # abspath, not resolve: a symlink keeps its name
    try:
        relative = absolute.relative_to(_absolute(root))
    except ValueError:
        return {"uri": absolute.as_uri()}  # as_uri percent-encodes
    # every octet outside unreserved characters and "/" is escaped (UTF-8), so the
    # reference cannot read as a scheme (":"), a fragment ("#") or a query ("?")
    return {"uri": quote(relative.as_posix(), safe="/"), "uriBaseId": "%SRCROOT%"}


def _absolute(root: Path) -> Path:
    return Path(os.path.abspath(root))


def _base_uri(root: Path) -> str:
    uri = _absolute(root).as_uri()
    return uri if uri.endswith("/") else uri + "/"


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
            "originalUriBaseIds": {"%SRCROOT%": {"uri": _base_uri(root)}},
            "artifacts": [{"location": _location(f, root)} for f in report.files],
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    }
