"""Render an audit report: one block per finding with its example keys (Rich or JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cachectl.audit import AuditReport, Finding, FindingCode, Severity
from cachectl.policy.units import format_duration_ms, format_size_bytes
from cachectl.render.console import display_key, jsonable

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def _example_value(finding: Finding, value: int | None) -> str:
    if value is None:
        return ""
    if finding.code is FindingCode.TTL_TOO_LONG:
        return f"ttl {format_duration_ms(value)}"
    return format_size_bytes(value)


def report_text(report: AuditReport) -> Group:
    parts: list[Any] = []
    for f in report.findings:
        where = f" [{f.namespace}]" if f.namespace else ""
        head = Text.assemble((f"{f.severity.value:<7}", _STYLE[f.severity]), " ",
                             (f.code, "bold"), where, "  ", f.message)
        parts.append(head)
        table = Table.grid(padding=(0, 2))
        table.add_column()
        table.add_column(justify="right")
        for ex in f.examples:
            table.add_row(Text("    " + display_key(ex.key)), _example_value(f, ex.value))
        parts.append(table)
        if f.hint:
            parts.append(Text(f"    hint: {f.hint}", style="dim"))
    if not report.findings:
        parts.append(Text("no findings", style="green"))
    if len(report.nodes) > 1:
        from cachectl.render.inspect import node_table

        parts += [Text(""), node_table(report.nodes)]
    parts.append(Text(""))
    parts.append(Text(summary_line(report),
                      style="bold red" if report.errors else "bold green"))
    return Group(*parts)


def summary_line(report: AuditReport) -> str:
    notes = []
    if report.expired_during_scan:
        notes.append(f"{report.expired_during_scan:,} expired during the scan")
    if report.denied_keys:
        notes.append(f"{report.denied_keys:,} keys refused by the ACL were not judged")
    tail = f" ({'; '.join(notes)})" if notes else ""
    return (f"{report.errors} error(s), {report.warnings} warning(s) in "
            f"{report.scanned_keys:,} keys on {len(report.nodes)} node(s), "
            f"{report.elapsed_s:.2f}s{tail}")


def report_json(report: AuditReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "errors": report.errors,
        "warnings": report.warnings,
        "scanned_keys": report.scanned_keys,
        "expired_during_scan": report.expired_during_scan,
        "denied_keys": report.denied_keys,
        "nodes": jsonable(list(report.nodes)),
        "elapsed_s": round(report.elapsed_s, 3),
        "method": report.method,
        "findings": jsonable(list(report.findings)),
    }
