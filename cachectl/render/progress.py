"""Draw core progress callbacks as Rich progress bars on a terminal; nothing when piped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cachectl.progress import ProgressCallback, no_progress
from cachectl.render import console


@contextmanager
def progress_bars(unit: str = "keys", enabled: bool | None = None) -> Iterator[ProgressCallback]:
    """Yield a ProgressCallback that draws one bar per task on stderr when it is a terminal."""
    if enabled is None:
        enabled = console.is_terminal()
    if not enabled:
        yield no_progress
        return
    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console.stderr(),
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(task: str, done: int, total: int | None = None) -> None:
        if task not in tasks:
            tasks[task] = bars.add_task(task, total=total, rate="")
        tid = tasks[task]
        elapsed = bars.tasks[tasks[task]].elapsed or 0.0
        rate = f"{done / elapsed:,.0f} {unit}/s" if elapsed > 0.2 else ""
        bars.update(tid, completed=done, total=total, rate=rate)

    with bars:
        yield update
