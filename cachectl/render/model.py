"""Render a ModelReport: a Rich table per namespace with small text charts, or a PNG (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cachectl.model.results import ModelReport, NamespaceModel
from cachectl.policy.units import format_duration_ms, format_size_bytes

if TYPE_CHECKING:
    from rich.console import Console

BARS = "▁▂▃▄▅▆▇█"
MEMORY_ROWS = 8


def spark(values: Sequence[float | None], width: int = 40) -> str:
    """A one-line chart of values in [0, 1], at most ``width`` wide (a gap where one is missing)."""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    return "".join(" " if v is None else BARS[min(len(BARS) - 1, int(max(0.0, v) * len(BARS)))]
                   for v in values)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def ttl_text(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration_ms(round(seconds * 1000))


def size_text(n: float | None) -> str:
    return "—" if n is None else format_size_bytes(n)


def recommendation_line(m: NamespaceModel) -> str:
    r = m.recommend
    if r.ttl_s is None:
        return (f"{m.namespace}: no TTL reaches {pct(m.threshold)}; the best is {ttl_text(r.best_ttl_s)} "
                f"at {pct(r.best_hit_rate)}")
    memory = (f", smallest shared cache meeting it {size_text(r.min_memory_bytes)}"
              if r.min_memory_bytes is not None else "")
    return (f"{m.namespace}: ttl {ttl_text(r.ttl_s)} -> hit rate {pct(r.hit_rate)} > {pct(m.threshold)}, "
            f"{r.load_rate_per_s or 0:,.1f} origin loads/s, maxmemory share {size_text(r.memory_bytes)}"
            f"{memory}")


def dropped_line(report: ModelReport) -> str:
    """What the library dropped from the trace it captured (``trace_dropped`` is not None)."""
    if not report.trace_dropped:
        return "captured trace: the library dropped no trace events since its first one"
    each = ", ".join(f"{m.namespace} {m.trace_dropped:,}" for m in report.namespaces if m.trace_dropped)
    return (f"captured trace: the library dropped {report.trace_dropped:,} trace events since its first one"
            f"{f' ({each})' if each else ''} (buffer full or Redis unavailable): the trace "
            "under-represents the load")


def render_report(report: ModelReport, console: Console) -> None:
    from rich.table import Table

    how = (f"SHARDS sample of {report.sample_rate * 100:.3g}% of keys, corrected"
           if report.sampled else "exact: every event")
    console.print(f"{report.requests:,} requests over {ttl_text(report.duration_s)} ({how}); "
                  f"key overhead {report.key_overhead_bytes} B ({report.key_overhead_source})",
                  markup=False)
    if report.trace_dropped is not None:
        console.print(dropped_line(report), markup=False)
    for m in report.namespaces:
        console.print(f"\n{m.namespace}: {m.requests:,} requests, {m.keys:,} keys"
                      f"{' (in the sample)' if report.sampled else ''}, hit rate must exceed "
                      f"{pct(m.threshold)}, policy ttl {ttl_text(m.policy_ttl_s)}", markup=False)
        table = Table()
        for col in ("ttl", "hit rate", "stale", "loads/s", "resident"):
            table.add_column(col, justify="right")
        for point in m.ttl_curve:
            mark = " *" if point.ttl_s == m.recommend.ttl_s else ""
            table.add_row(ttl_text(point.ttl_s) + mark, pct(point.hit_rate), pct(point.stale_rate),
                          f"{point.load_rate_per_s:,.1f}", size_text(point.resident_bytes))
        console.print(table)
        console.print(f"  hit rate by ttl   {spark([p.hit_rate for p in m.ttl_curve])}  "
                      f"{ttl_text(m.ttl_curve[0].ttl_s)}..{ttl_text(m.ttl_curve[-1].ttl_s)}", markup=False)
        console.print(f"  hit rate by size  {spark([p.hit_rate for p in m.memory_curve])}  "
                      f"{size_text(m.memory_curve[0].bytes)}..{size_text(m.memory_curve[-1].bytes)} "
                      f"(exact LRU, ttl {ttl_text(m.memory_curve_ttl_s)})", markup=False)
        memory = Table(show_header=True, box=None, padding=(0, 2))
        for col in ("maxmemory", "exact LRU", "Redis LRU", "byte hit rate"):
            memory.add_column(col, justify="right")
        simulated = [p for p in m.memory_curve if p.redis_lru_hit_rate is not None]
        step = max(1, len(simulated) // MEMORY_ROWS)
        for p in simulated[::step]:
            memory.add_row(size_text(p.bytes), pct(p.hit_rate), pct(p.redis_lru_hit_rate),
                           pct(p.byte_hit_rate))
        console.print(memory)
        if m.hot_keys:
            hot = ", ".join(f"{k.key if k.key is not None else k.key_hash} ({k.requests:,})"
                            for k in m.hot_keys[:5])
            console.print(f"  hot keys: {hot}", markup=False, soft_wrap=True)
        console.print("  " + recommendation_line(m), markup=False)
    for e in report.evaluations:
        rates = ", ".join(f"{ns} {pct(r)}" for ns, r in e.redis_lru_hit_rate.items())
        verdict = "meets every threshold" if e.meets_thresholds else "misses a threshold"
        console.print(f"maxmemory {size_text(e.bytes)} (Redis LRU): {rates}: {verdict}", markup=False)
    if report.maxmemory_bytes is not None:
        console.print(f"maxmemory for the whole policy at the recommended TTLs: "
                      f"{size_text(report.maxmemory_bytes)} (resident / {pct(report.memory_used_ratio)}, "
                      f"Redis's own baseline not included)", markup=False)
    else:
        console.print("maxmemory: no recommendation, a namespace's threshold is out of reach",
                      markup=False)


def plot_report(report: ModelReport, path: Path) -> None:
    """Draw the TTL and memory curves of every namespace into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_ttl, by_size) = plt.subplots(1, 2, figsize=(12, 4.5))
    for m in report.namespaces:
        line = by_ttl.plot([p.ttl_s for p in m.ttl_curve], [p.hit_rate for p in m.ttl_curve],
                           marker=".", label=m.namespace)[0]
        by_ttl.axhline(m.threshold, color=line.get_color(), linestyle=":", linewidth=0.8)
        by_size.plot([p.bytes for p in m.memory_curve], [p.hit_rate for p in m.memory_curve],
                     color=line.get_color(), label=f"{m.namespace} exact LRU")
        redis = [p for p in m.memory_curve if p.redis_lru_hit_rate is not None]
        by_size.plot([p.bytes for p in redis], [p.redis_lru_hit_rate for p in redis], linestyle="--",
                     marker=".", color=line.get_color(), label=f"{m.namespace} Redis LRU")
    by_ttl.set(xscale="log", xlabel="TTL (s)", ylabel="hit rate", ylim=(0, 1), title="TTL curve")
    by_size.set(xscale="log", xlabel="maxmemory (bytes)", ylabel="hit rate", ylim=(0, 1),
                title="memory curve")
    by_ttl.legend(fontsize="small")
    by_size.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
