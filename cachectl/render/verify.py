"""Render a verify report: a table per run, the example differences, the verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cachectl.verify import NamespaceVerify, VerifyReport

if TYPE_CHECKING:
    from rich.console import Console


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def ratio_text(n: NamespaceVerify, kind: str) -> str:
    """``2.0 % ±1.1`` (sampled) or ``2.0 %`` (every key checked)."""
    est = n.estimate(kind)
    if not n.sampled:
        return _pct(est.ratio)
    return f"{_pct(est.ratio)} ({_pct(est.low)}–{_pct(est.high)})"


def _bands(n: NamespaceVerify, kind: str) -> str:
    count = n.count(kind)
    if not count:
        return "0"
    parts = ", ".join(f"{band.replace('_', '-')} {c}"
                      for band, c in sorted(n.counts.get(kind, {}).items()))
    return f"{count} ({parts})"


def render_report(report: VerifyReport, console: Console) -> None:
    """The per-namespace table, then each namespace's example keys and their diffs."""
    from rich.table import Table

    table = Table(title="cachectl verify", title_justify="left")
    table.add_column("namespace", no_wrap=True)
    for column in ("checked", "identical", "different", "missing", "unparseable",
                   "wrong, fresh"):
        table.add_column(column, justify="right")
    for n in report.namespaces:
        checked = f"{n.checked:,} of {n.keys:,}" if n.sampled else f"{n.checked:,}"
        wrong = ratio_text(n, "inconsistent")
        table.add_row(n.namespace, checked, f"{n.identical:,}", _bands(n, "different"),
                      _bands(n, "missing"), _bands(n, "unparseable"),
                      f"[red]{wrong}[/red]" if n.exceeded else wrong)
    console.print(table)
    for n in report.namespaces:
        limit = "not judged" if n.limit is None else f"limit {_pct(n.limit)}"
        notes = [f"source: {n.source} ({n.access})", limit]
        if n.access == "read in full":
            notes.append("no lookup: the whole source was read (add lookup: to the source)")
        if n.not_cached is not None:
            notes.append(f"{n.not_cached:,} source rows have no cached key")
        console.print(f"[bold]{n.namespace}[/bold]: " + "; ".join(notes), highlight=False)
        for d in n.examples:
            console.print(f"  {d.key}  {d.kind} while {d.band.replace('_', '-')}",
                          markup=False, highlight=False)
            for line in d.diff:
                console.print(f"      {line}", markup=False, highlight=False)
    if report.fixed is not None:
        console.print(f"fixed: {report.fixed.rewritten:,} rewritten from the source, "
                      f"{report.fixed.removed:,} removed", highlight=False)
    for n in report.exceeded:
        console.print(f"[red]{n.namespace}: {n.inconsistent_fresh:,} of {n.checked:,} checked "
                      f"keys differ from the source while fresh (limit "
                      f"{_pct(n.limit or 0.0)})[/red]", highlight=False)
