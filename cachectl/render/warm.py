"""Render warm reports (Rich table or JSON) and draw warm progress (rows, keys/s, bytes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cachectl.policy.units import format_size_bytes
from cachectl.render import console as consoles
from cachectl.warm.core import WarmProgress
from cachectl.warm.model import WarmReport

if TYPE_CHECKING:  # rich's progress and table modules load only when drawn (not for --json)
    from rich.console import Console
    from rich.progress import TaskID


def _no_progress(task: str, done: int, total: int | None = None, *, payload_bytes: int = 0) -> None:
    pass


@contextmanager
def warm_progress(enabled: bool | None = None) -> Iterator[WarmProgress]:
    """A progress bar per namespace on stderr when it is a terminal; nothing when piped."""
    if enabled is None:
        enabled = consoles.is_terminal()
    if not enabled:
        yield _no_progress
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]}"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[size]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=consoles.stderr(),
        transient=False,
    )
    tasks: dict[str, tuple[TaskID, float]] = {}

    def update(task: str, done: int, total: int | None = None, *, payload_bytes: int = 0) -> None:
        if task not in tasks:
            tasks[task] = (bars.add_task(task, total=total, rows="", rate="", size=""),
                           time.monotonic())
        tid, started = tasks[task]
        elapsed = time.monotonic() - started
        rows = f"{done:,}/{total:,} rows" if total else f"{done:,} rows"
        rate = f"{done / elapsed:,.0f} keys/s" if elapsed > 0.2 else ""
        if total is not None and done > total:
            total = done
        bars.update(tid, completed=done, total=total, rows=rows, rate=rate,
                    size=format_size_bytes(payload_bytes))

    with bars:
        yield update


def render_report(report: WarmReport, out: Console) -> None:
    """The summary table, then the first problem rows of each namespace, and sample keys."""
    from rich.table import Table
    from rich.text import Text

    title = ("warm (dry run: nothing written)" if report.dry_run else
             "warm, interrupted" if report.interrupted else
             "warm (only missing keys)" if report.only_missing else "warm")
    table = Table(title=title, title_justify="left")
    table.add_column("namespace", no_wrap=True)
    for name in ("rows", "would write" if report.dry_run else "written") + (
            ("skipped",) if report.only_missing and not report.dry_run else ()) + (
            ("rejected", "failed") if report.failed else ("rejected",)) + (
            ("size", "s") if report.dry_run else ("size", "s", "keys/s")):
        table.add_column(name, justify="right", no_wrap=True)
    for ns in report.namespaces:
        row: list[str | Text] = [ns.namespace + ("" if ns.complete else " (partial)"),
                                 f"{ns.rows:,}", f"{ns.written:,}"]
        if report.only_missing and not report.dry_run:
            row.append(f"{ns.skipped:,}")
        row.append(Text(f"{ns.rejected:,}", style="red" if ns.rejected else ""))
        if report.failed:
            row.append(Text(f"{ns.failed:,}", style="red"))
        row += [format_size_bytes(ns.payload_bytes), f"{ns.seconds:.2f}"]
        if not report.dry_run:
            row.append(f"{ns.keys_per_s:,.0f}")
        table.add_row(*row)
    out.print(table)
    for ns in report.namespaces:
        out.print(f"{ns.namespace} <- {ns.source}", markup=False, highlight=False, style="dim",
                  soft_wrap=True)
    for ns in report.namespaces:
        if not ns.problems:
            continue
        bad = ns.rejected + ns.failed
        reasons = ", ".join(f"{n:,} {what}" for what, n in ns.errors_by_reason.items())
        out.print(f"{ns.namespace}: {_n(bad, 'row')} not written ({reasons}); first "
                  f"{len(ns.problems)}:", markup=False)
        for p in ns.problems:
            out.print(f"  {p.locator}: {p.reason}", markup=False, highlight=False,
                      soft_wrap=True)
    if report.dry_run:
        for ns in report.namespaces:
            if ns.sample_keys:
                low, high = ns.ttl_bounds_ms
                out.print(f"{ns.namespace}: PX {low:,}..{high:,} ms, e.g. "
                          + ", ".join(ns.sample_keys[:3]), markup=False, highlight=False,
                          soft_wrap=True)
    verb = "would write" if report.dry_run else "wrote"
    summary = (f"{verb} {_n(report.written, 'key')} "
               f"({format_size_bytes(report.payload_bytes)})")
    if report.skipped:
        summary += f", skipped {report.skipped:,} existing"
    if report.rejected:
        summary += f", rejected {_n(report.rejected, 'row')}"
    if report.failed:
        summary += f", Redis refused {_n(report.failed, 'write')}"
    out.print(summary + f" in {report.seconds:.2f} s", markup=False)
    if report.stopped:
        out.print(f"stopped early: {report.stopped}", markup=False, style="red")


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def report_json(report: WarmReport) -> dict[str, Any]:
    return report.to_json()
