"""Lint findings as text: ``file:line:col: CODE severity message`` and an indented hint.

Colour (Rich) only when ``color`` is true (a terminal); piped output is plain text, and
Rich is not even imported then, so ``cachectl lint`` in CI starts fast.
"""

from __future__ import annotations

from typing import IO

from cachectl.diagnostics import RULES, Diagnostic, Rule, Severity
from cachectl.lint.report import LintReport

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow"}


def format_diagnostic(d: Diagnostic) -> list[str]:
    """The plain lines of one finding: the location line, then the hint indented."""
    lines = [f"{d.span.path}:{d.span.line}:{d.span.col}: {d.code} {d.severity.value} {d.message}"]
    if d.hint:
        lines.append(f"    hint: {d.hint}")
    return lines


def summary(report: LintReport) -> str:
    """One line: what was found in how many files, and whether the run fails."""
    files = f"{len(report.files)} file{'s' if len(report.files) != 1 else ''}"
    if not report.diagnostics:
        return f"{files} checked, no findings"
    parts = [f"{report.errors} error{'s' if report.errors != 1 else ''}",
             f"{report.warnings} warning{'s' if report.warnings != 1 else ''}"]
    tail = " (warnings fail under --strict)" if report.strict and report.warnings else ""
    return f"{', '.join(parts)} in {files}{tail}"


def render_text(report: LintReport, out: IO[str], color: bool = False) -> None:
    """Write every finding and the summary line to ``out``."""
    if not color:
        for d in report.diagnostics:
            out.write("\n".join(format_diagnostic(d)) + "\n")
        out.write(summary(report) + "\n")
        out.flush()
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=out, highlight=False, soft_wrap=True, force_terminal=True)
    for d in report.diagnostics:
        console.print(f"[bold]{escape(d.span.path)}:{d.span.line}:{d.span.col}:[/] "
                      f"[{_STYLE[d.severity]}]{d.code} {d.severity.value}[/] {escape(d.message)}")
        if d.hint:
            console.print(f"    [dim]hint:[/] {escape(d.hint)}")
    style = "bold red" if report.failed else ("yellow" if report.warnings else "green")
    console.print(f"[{style}]{escape(summary(report))}[/]")


def render_rules_text(out: IO[str], color: bool = False) -> None:
    """The rule registry as a table (``cachectl lint --list-rules``)."""
    rules: list[Rule] = list(RULES.values())
    if color:
        from rich.console import Console
        from rich.table import Table

        table = Table("code", "name", "severity", "summary", box=None, pad_edge=False)
        for r in rules:
            table.add_row(r.code, r.name, f"[{_STYLE[r.severity]}]{r.severity.value}[/]", r.summary)
        Console(file=out, force_terminal=True, highlight=False).print(table)
        return
    width = max(len(r.name) for r in rules)
    out.write(f"{'code':<6} {'name':<{width}} {'severity':<8} summary\n")
    for r in rules:
        out.write(f"{r.code:<6} {r.name:<{width}} {r.severity.value:<8} {r.summary}\n")
    out.flush()
