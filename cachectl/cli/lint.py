"""cachectl lint: check policy files in CI (text, JSON, SARIF or GitHub annotations)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from cachectl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    _Render = Callable[[IO[str], bool], None]


class LintFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    GITHUB = "github"


def command(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Policy files, or folders searched for *.yaml and *.yml.", show_default=False)]
    = None,
    fmt: Annotated[LintFormat, typer.Option(
        "--format", "-f", help="text (default), json, sarif (code scanning) or github "
        "(workflow annotations).", case_sensitive=False)] = LintFormat.TEXT,
    json_: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Fail (exit 1) on warnings too, not only on errors.")] = False,
    list_rules: Annotated[bool, typer.Option(
        "--list-rules", help="Print every rule (code, name, severity, summary) and exit.")]
    = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the report to this file instead of stdout.",
        dir_okay=False)] = None,
) -> int:
    """Check policy files: schema errors and semantic rules, each with a code and a line.

    Exit 0 when clean, 1 on error findings (or warnings with --strict), 2 when a path
    cannot be read or the invocation is wrong.

    Example: cachectl lint policies/ --format github --strict
    """
    if json_:
        fmt = LintFormat.JSON
    if list_rules:
        return _write(output, lambda out, color: _rules(out, color, fmt))
    if not paths:
        raise UsageError("give at least one policy file or folder",
                         hint="cachectl lint policies/   (or --list-rules)")
    from cachectl.lint import lint_paths

    report = lint_paths(paths, os.environ, strict=strict)

    def render(out: IO[str], color: bool) -> None:
        if fmt is LintFormat.TEXT:
            from cachectl.render.lint_text import render_text

            render_text(report, out, color)
        elif fmt is LintFormat.JSON:
            from cachectl.render.console import emit_json

            emit_json(report.to_json(), out)
        elif fmt is LintFormat.SARIF:
            from cachectl.render.console import emit_json
            from cachectl.render.sarif import sarif_document

            emit_json(sarif_document(report), out)
        else:
            from cachectl.render.github import render_github

            render_github(report, out)

    _write(output, render)
    if output is not None or fmt is LintFormat.GITHUB:
        from cachectl.render.lint_text import summary

        sys.stderr.write(summary(report) + "\n")
    return int(report.exit_code)


def _rules(out: IO[str], color: bool, fmt: LintFormat) -> None:
    if fmt is LintFormat.JSON:
        from dataclasses import asdict

        from cachectl.diagnostics import RULES
        from cachectl.render.console import emit_json

        emit_json([asdict(r) for r in RULES.values()], out)
        return
    from cachectl.render.lint_text import render_rules_text

    render_rules_text(out, color)


def _write(output: Path | None, render: _Render) -> int:
    if output is None:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        render(sys.stdout, color)
        return 0
    try:
        with output.open("w", encoding="utf-8") as fh:
            render(fh, False)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    return 0
