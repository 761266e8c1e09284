"""Render benchmark results: a table against the thresholds, text histograms, JSON, a plot."""

from __future__ import annotations

import html
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cachectl.bench import BenchResult, RunResult, Verdict
from cachectl.errors import UsageError, install_extra_hint
from cachectl.progress import ProgressCallback, no_progress
from cachectl.render import console as consoles
from cachectl.render.console import jsonable

PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".html")
_BAR_WIDTH = 30


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def bench_json(result: BenchResult) -> dict[str, Any]:
    """The --json document: every run with its percentiles, verdict and percentile curve."""
    doc: dict[str, Any] = jsonable(result)
    doc["passed"] = result.passed
    return doc


def render_result(result: BenchResult, console: Console) -> None:
    """The results table, one text histogram per run, origin comparisons and a summary."""
    table = Table(title=Text(f"cachectl bench {result.server} (latency in ms)"),
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=(0, 0))
    for col, right in (("namespace", False), ("mode", False), ("requests", True),
                       ("req/s", True), ("err", True), ("p50", True), ("p99", True),
                       ("p99.9", True), ("max", True), ("limit", True), ("", False)):
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for run in result.runs:
        lat = run.latency
        verdict = Text(run.verdict.value, style={Verdict.PASS: "green", Verdict.FAIL: "bold red",
                                                 Verdict.SKIP: "yellow"}[run.verdict])
        table.add_row(Text(run.namespace), run.mode.value, f"{run.requests:,}",
                      f"{run.throughput_rps:,.0f}", f"{run.errors + run.timeouts:,}",
                      _ms(lat.p50_ms), _ms(lat.p99_ms), _ms(lat.p999_ms),
                      _ms(lat.max_ms), f"{run.threshold_p99_ms:g}", verdict)
    console.print(table)
    for run in result.runs:
        _render_run_details(run, console)
    if result.keys_written:
        if result.kept:
            tail = "kept (--keep); they expire by their TTL"
        else:
            tail = f"{result.keys_removed:,} removed"
        console.print(f"benchmark keys: {result.keys_written:,} written, {tail}", markup=False)
    failed = result.failed
    if failed:
        console.print(f"{len(failed)} of {len(result.runs)} runs FAILED the policy's thresholds",
                      style="bold red", markup=False)


def _render_run_details(run: RunResult, console: Console) -> None:
    desc = (f"{run.namespace} {run.mode.value}: {run.working_set:,} of {run.keys:,} "
            f"{run.key_source} keys, {run.distribution}, {run.clients} client(s), pipeline "
            f"{run.pipeline}, p90 {_ms(run.latency.p90_ms)} ms")
    if run.read_ratio is not None:
        desc += f", read ratio {run.read_ratio:g}"
    if run.value_bytes_mean:
        desc += f", values ~{run.value_bytes_mean:,.0f} B ({run.value_size_source})"
    console.print(Text(desc, style="bold"))
    for reason in run.reasons:
        console.print(Text(f"  {run.verdict.value}: {reason}"))
    if run.misses:
        console.print(Text(f"  {run.misses:,} of {run.reads:,} reads found no key "
                           "(expired or evicted during the run)"))
    if run.first_error:
        console.print(Text(f"  first error: {run.first_error}"))
    for line in histogram_lines(run):
        console.print(Text(line), highlight=False)
    origin = run.origin
    if origin is not None:
        if not origin.timed or origin.latency is None:
            console.print(Text(f"  origin: not timed ({origin.reason})"))
        else:
            lat = origin.latency
            line = (f"  origin {origin.source}: p50 {_ms(lat.p50_ms)} ms, p99 {_ms(lat.p99_ms)} ms "
                    f"over {origin.samples} loads")
            if origin.speedup_p50:
                line += f"; the cached read is {origin.speedup_p50:,.1f}x faster at p50"
            console.print(Text(line))
            if origin.faster_at_hit_rate is not None:
                console.print(Text(
                    f"  at the policy's hit rate {origin.hit_rate:.0%}: "
                    f"{origin.origin_calls_saved:.0%} fewer origin calls, reads "
                    f"{origin.faster_at_hit_rate:.0%} faster on average than without the cache"))


def histogram_lines(run: RunResult, rows: int = 8) -> list[str]:
    """A plain text histogram: log-spaced latency ranges with bars of the request count."""
    bars = run.histogram.bars(rows)
    if not bars:
        return []
    peak = max(c for _, _, c in bars) or 1
    total = run.histogram.total
    out = []
    for low, high, count in bars:
        width = round(_BAR_WIDTH * count / peak)
        bar = "#" * width if count == 0 or width else "."
        out.append(f"  {_ms(low):>7}-{_ms(high):<7} ms |{bar:<{_BAR_WIDTH}}| "
                   f"{count:>10,} {count / total:6.1%}")
    return out


# --------------------------------------------------------------------------- live progress

REFRESH_S = 1.0  # drawing takes the GIL from the measuring threads: rarely, and briefly


@contextmanager
def live_progress(enabled: bool | None = None) -> Iterator[ProgressCallback]:
    """Draw loading and measuring progress on stderr (a terminal only), once a second.

    Unlike the shared progress bars this never refreshes from a background thread: a
    redraw happens inside the coordinator's own progress call, at most every
    ``REFRESH_S``, so the measuring clients lose the GIL as little as possible.
    """
    if enabled is None:
        enabled = consoles.is_terminal()
    if not enabled:
        yield no_progress
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), console=consoles.stderr(),
                    transient=True, auto_refresh=False)
    tasks: dict[str, TaskID] = {}
    started: dict[str, tuple[float, int]] = {}
    last_draw = 0.0

    def update(task: str, done: int, total: int | None = None) -> None:
        nonlocal last_draw
        now = time.monotonic()
        if task not in tasks:
            tasks[task] = bars.add_task(task, total=total, rate="")
        if done and task not in started:  # the warm-up is over: rate from here
            started[task] = (now, done)
        rate = ""
        if task in started and now - started[task][0] > 0.5:
            t0, d0 = started[task]
            unit = "keys" if task.endswith(": load") else "req"
            rate = f"{(done - d0) / (now - t0):,.0f} {unit}/s"
        bars.update(tasks[task], completed=done, total=total, rate=rate)
        if now - last_draw >= REFRESH_S or (total is not None and done >= total):
            last_draw = now
            bars.refresh()

    with bars:
        yield update


# --------------------------------------------------------------------------- plot


def check_plot_target(path: Path) -> None:
    """UsageError, before anything runs, when ``--plot`` cannot be written."""
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {path}: unknown format {path.suffix or '(none)'}",
                         hint=f"use one of {', '.join(PLOT_SUFFIXES)}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib, which is not installed",
                         hint=install_extra_hint("plot")) from None
    if not path.parent.exists():
        raise UsageError(f"--plot {path}: folder {path.parent} does not exist")


def write_plot(result: BenchResult, path: Path) -> None:
    """Draw every run's percentile curve (latency vs. 1/(1-p), both log) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter

    fig, ax = plt.subplots(figsize=(9, 5.5))
    limits: set[float] = set()
    for run in result.runs:
        curve = [(p, v) for p, v in run.histogram.percentile_curve() if p < 100.0]
        if not curve:
            continue
        xs = [1 / (1 - p / 100) for p, _ in curve]
        ax.plot(xs, [v for _, v in curve], label=f"{run.namespace} {run.mode.value} "
                f"(p99 {_ms(run.latency.p99_ms)} ms)")
        limits.add(run.threshold_p99_ms)
    for limit in sorted(limits):
        ax.axhline(limit, linestyle="--", color="red", linewidth=1)
        ax.text(1, limit, f" p99 limit {limit:g} ms", color="red", va="bottom", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _: f"{100 - 100 / x:g}%" if x > 1 else "0%"))
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(f"cachectl bench {result.server}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path.suffix.lower() == ".html":
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        path.write_text("<!doctype html>\n<html><head><meta charset='utf-8'><title>"
                        f"{html.escape('cachectl bench ' + result.server)}</title></head>"
                        f"<body>\n{buf.getvalue()}\n</body></html>\n", encoding="utf-8")
    else:
        fig.savefig(path)
    plt.close(fig)
