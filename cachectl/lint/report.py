"""The result of linting: every diagnostic of every file, and what it means for the exit code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cachectl.diagnostics import Diagnostic, Severity
from cachectl.errors import ExitCode


@dataclass(frozen=True)
class LintReport:
    """Diagnostics of the linted files, sorted by file, line, column and code.

    ``strict`` makes warnings fail the run as errors do (``cachectl lint --strict``).
    """

    files: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]
    strict: bool = False

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity is Severity.WARNING)

    @property
    def failed(self) -> bool:
        """Whether the run fails: an error, or under --strict any finding."""
        return self.errors > 0 or (self.strict and self.warnings > 0)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.FINDINGS if self.failed else ExitCode.OK

    def for_file(self, path: str) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.span.path == path)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape of ``cachectl lint --format json`` (see docs/lint.md)."""
        return {
            "version": 1,
            "files": list(self.files),
            "summary": {"files": len(self.files), "errors": self.errors,
                        "warnings": self.warnings, "strict": self.strict,
                        "failed": self.failed},
            "diagnostics": [diagnostic_json(d) for d in self.diagnostics],
        }


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    return {"path": d.span.path, "line": d.span.line, "col": d.span.col, "code": d.code,
            "name": d.rule.name, "severity": d.severity.value, "message": d.message,
            "hint": d.hint}
