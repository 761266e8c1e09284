"""Lint findings as GitHub Actions workflow commands (annotations on the pull request).

``::error file=F,line=L,col=C,title=CODE::message`` (``::warning`` for warnings); the
values are escaped as the runner expects (``%``, CR, LF; and ``:`` ``,`` in properties).
"""

from __future__ import annotations

from typing import IO

from cachectl.diagnostics import Diagnostic, Severity
from cachectl.lint.report import LintReport


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_annotation(d: Diagnostic) -> str:
    level = "error" if d.severity is Severity.ERROR else "warning"
    props = ",".join(f"{k}={_escape_property(str(v))}" for k, v in (
        ("file", d.span.path), ("line", d.span.line), ("col", d.span.col), ("title", d.code)))
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    return f"::{level} {props}::{_escape_data(message)}"


def render_github(report: LintReport, out: IO[str]) -> None:
    for d in report.diagnostics:
        out.write(format_annotation(d) + "\n")
    out.flush()
