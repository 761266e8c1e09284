"""StatsReport -> a Rich dashboard: server table, namespace table, and the findings."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from cachectl.policy.units import format_duration_ms, format_size_bytes
from cachectl.render import console as consoles
from cachectl.stats.model import Check, KeySample, NodeStats, StatsReport, Status

STYLES = {
    Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red",
    Status.LOW_TRAFFIC: "dim", Status.NO_DATA: "dim",
}
LABELS = {
    Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL",
    Status.LOW_TRAFFIC: "too little traffic", Status.NO_DATA: "no data",
}


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x * 100:.{digits}f}%"


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3f}" if x < 1 else f"{x:.1f}"


def status_text(status: Status) -> Text:
    return Text(LABELS[status], style=STYLES[status])


def _checks_for(report: StatsReport, *, node: str | None = None,
                namespace: str | None = None) -> dict[str, Check]:
    return {c.check: c for c in report.checks
            if (node is not None and c.node == node) or
            (namespace is not None and c.namespace == namespace)}


def _styled(text: str, check: Check | None) -> Text:
    if check is None:
        return Text(text)
    return Text(text, style=STYLES[check.status] if check.status is not Status.PASS else "")


def _latency_cell(n: NodeStats) -> str:
    lat = n.latency
    if lat is None:
        return "–"
    if lat.p99_ms is None:
        return f"mean {_ms(lat.mean_ms)} ms"
    text = f"{_ms(lat.p50_ms)} / {_ms(lat.p99_ms)} ms"
    return text + (" (since restart)" if lat.basis != "interval" else "")


def _memory_cell(n: NodeStats) -> str:
    if n.maxmemory_bytes == 0:
        limit = "unbounded"
        if n.used_memory_ratio is not None:
            limit += f", {_pct(n.used_memory_ratio)} of RAM"
        return f"{format_size_bytes(n.used_memory_bytes)} ({limit})"
    return (f"{format_size_bytes(n.used_memory_bytes)} / {format_size_bytes(n.maxmemory_bytes)} "
            f"({_pct(n.used_memory_ratio)})")


def server_table(report: StatsReport) -> Table:
    """Figures as rows, one column per primary (and a total column for a cluster)."""
    table = Table(title=f"Server · deltas over {report.interval_s:.1f}s", box=box.SIMPLE_HEAD,
                  title_justify="left")
    table.add_column("figure")
    nodes = list(report.nodes) + ([report.total] if len(report.nodes) > 1 else [])
    for n in nodes:
        table.add_column(n.node, justify="right")
    table.add_column("threshold", style="dim")
    checks = [_checks_for(report, node=n.node) for n in nodes]
    t = {c.check: c.threshold for c in report.checks}

    def row(label: str, cells: list[str], check: str | None = None, alt: str | None = None,
            threshold: str = "") -> None:
        styled = [_styled(text, (cs.get(check) if check else None) or (cs.get(alt) if alt else None))
                  for text, cs in zip(cells, checks, strict=True)]
        table.add_row(label, *styled, threshold)

    row("engine", [" ".join(filter(None, (n.engine, n.engine_version))) or "-" for n in nodes])
    hr = t.get("server_hit_rate")
    row("hit rate", [_pct(n.hit_rate) for n in nodes], "server_hit_rate",
        threshold=f"> {_pct(hr, 0)}" if isinstance(hr, float) else "")
    row("hit rate since restart", [_pct(n.hit_rate_since_restart) for n in nodes])
    row("ops/s", [_rate(n.ops_per_s) for n in nodes])
    mr = t.get("memory_used_ratio")
    row("memory used", [_memory_cell(n) for n in nodes], "memory_used_ratio", "maxmemory",
        threshold=f"< {_pct(mr, 0)}" if isinstance(mr, float) else "")
    row("memory peak", [f"{format_size_bytes(n.peak_memory_bytes)} ({_pct(n.peak_memory_ratio)})"
                        for n in nodes], "memory_peak_ratio")
    row("eviction policy", [n.eviction_policy or "–" for n in nodes], "eviction_policy")
    row("evicted / expired keys/s",
        [f"{_rate(n.evicted_keys_per_s)} / {_rate(n.expired_keys_per_s)}" for n in nodes], "evictions")
    row("fragmentation", ["–" if n.fragmentation_ratio is None else f"{n.fragmentation_ratio:.2f}"
                          for n in nodes], "fragmentation")
    row("clients (blocked)", [f"{n.connected_clients} ({n.blocked_clients})" for n in nodes],
        "connected_clients")
    row("keys (with TTL)", [f"{n.keys:,} ({n.keys_with_ttl:,})" for n in nodes])
    lt = t.get("read_latency_p99")
    row("read p50 / p99", [_latency_cell(n) for n in nodes], "read_latency_p99",
        threshold=f"p99 < {lt:g} ms" if isinstance(lt, float) else "")
    return table


def _keys_cell(k: KeySample | None) -> str:
    if k is None:
        return "–"
    if k.exact:
        return f"{k.keys:,}"
    return f"~{k.keys:,} ±{k.keys_margin:,}"


def namespace_table(report: StatsReport, width: int = 140) -> Table:
    """One row per namespace: counters over the window, verdict, sampled keys.

    Below 150 columns the per-freshness breakdown (fresh/stale/fail-safe hits), origin
    calls saved and load time are left out (they stay in --json).
    """
    wide = width >= 150
    window = format_duration_ms(report.window_s * 1000)
    table = Table(title=f"Namespaces · library counters over the last {window} (* critical)",
                  box=box.SIMPLE_HEAD, title_justify="left")
    cols = ["namespace", "requests", "hit rate", "min"]
    if wide:
        cols += ["fresh/stale/fs"]
    cols += ["misses", "stale", "errors"]
    if wide:
        cols += ["saved", "load ms"]
    if report.scan.enabled:
        cols += ["keys", "memory"]
    cols.append("verdict")
    for col in cols:
        table.add_column(col, justify="left" if col in ("namespace", "verdict") else "right",
                         no_wrap=True)
    for ns in report.namespaces:
        checks = _checks_for(report, namespace=ns.namespace)
        name = ns.namespace + (" *" if ns.critical else "") + ("" if ns.in_policy else " (unknown)")
        row: list[str | Text] = [
            name, f"{ns.requests:,}",
            _styled(_pct(ns.hit_rate), checks.get("hit_rate")),
            _pct(ns.hit_rate_threshold, 0),
        ]
        if wide:
            row.append(f"{ns.fresh_hits:,}/{ns.stale_hits:,}/{ns.fail_safe_hits:,}")
        row += [
            f"{ns.misses:,}",
            _styled(_pct(ns.stale_ratio), checks.get("stale_ratio")),
            _styled(f"{ns.refresh_errors + ns.redis_errors:,}",
                    checks.get("refresh_errors") or checks.get("redis_errors")),
        ]
        if wide:
            row += [f"{ns.origin_calls_saved:,}", _ms(ns.mean_load_ms)]
        if report.scan.enabled:
            k = ns.keys
            memory = "–" if k is None or k.memory_bytes is None else format_size_bytes(k.memory_bytes)
            row += [_keys_cell(k), memory]
        row.append(Text("low traffic", style=STYLES[ns.status])
                   if ns.status is Status.LOW_TRAFFIC else status_text(ns.status))
        table.add_row(*row)
    return table


def findings(report: StatsReport) -> RenderableType:
    """Every check that did not pass, worst first (namespaces too quiet to judge on one line)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    quiet: list[str] = []
    for c in sorted(report.checks, key=lambda c: -c.status.rank):
        if c.status is Status.PASS:
            continue
        if c.status is Status.LOW_TRAFFIC and c.namespace is not None:
            quiet.append(c.namespace)
            continue
        grid.add_row(status_text(c.status), Text(c.message))
    if quiet:
        window = format_duration_ms(report.window_s * 1000)
        grid.add_row(status_text(Status.LOW_TRAFFIC),
                     Text(f"fewer requests in {window} than min_requests, not judged: "
                          + ", ".join(quiet)))
    counts = {s: sum(c.status is s for c in report.checks) for s in Status}
    tally = Text()
    tally.append("Result: ")
    tally.append(LABELS[report.status], style=STYLES[report.status])
    tally.append(f" · {len(report.checks)} checks: {counts[Status.PASS]} pass, "
                 f"{counts[Status.WARN]} warn, {counts[Status.FAIL]} fail, "
                 f"{counts[Status.LOW_TRAFFIC]} too little traffic, {counts[Status.NO_DATA]} no data")
    return Group(grid, tally)


def verify_lines(report: StatsReport) -> Text | None:
    """The last cachectl verify result of each namespace that has one, or None."""
    lines = []
    for ns in report.namespaces:
        record = ns.verify
        if not record:
            continue
        estimate = record.get("inconsistency") or {}
        ratio = estimate.get("ratio") if isinstance(estimate, dict) else None
        lines.append(f"{ns.namespace}: {_pct(ratio if isinstance(ratio, int | float) else None)}"
                     f" wrong while fresh of {record.get('checked', '?')} keys checked"
                     f"{' (over the limit)' if record.get('exceeded') else ''}, "
                     f"at {record.get('time', '?')}")
    if not lines:
        return None
    return Text("Last verify: " + "; ".join(lines))


def trace_dropped_line(report: StatsReport) -> Text | None:
    """The library's dropped trace events in the window, per namespace; None when there are none."""
    dropped = [(ns.namespace, ns.trace_dropped) for ns in report.namespaces if ns.trace_dropped]
    if not dropped:
        return None
    each = ", ".join(f"{name} {n:,}" for name, n in dropped)
    window = format_duration_ms(report.window_s * 1000)
    return Text(f"Trace events the library dropped in the last {window} (buffer full or Redis "
                f"unavailable): {each}; the captured trace under-represents the load")


def header(report: StatsReport) -> Text:
    text = Text()
    text.append("cachectl stats ", style="bold")
    text.append(f"{report.target} · {report.generated_at} · interval {report.interval_s:.1f}s · "
                f"window {format_duration_ms(report.window_s * 1000)}")
    if report.scan.enabled:
        how = "full scan" if report.scan.exact else f"sampled {report.scan.scanned_keys:,} keys"
        text.append(f" · keys: {how} of {report.scan.total_keys:,} "
                    f"({report.scan.duration_ms:.0f} ms)")
    return text


def stats_dashboard(report: StatsReport, width: int = 140) -> RenderableType:
    """The whole dashboard as one renderable (printed once, or refreshed by ``--watch``)."""
    parts: list[RenderableType] = [header(report), server_table(report)]
    if report.namespaces:
        parts.append(namespace_table(report, width))
    verified = verify_lines(report)
    if verified is not None:
        parts.append(verified)
    dropped = trace_dropped_line(report)
    if dropped is not None:
        parts.append(dropped)
    parts.append(findings(report))
    return Group(*parts)


PIPED_WIDTH = 160


def dashboard_console() -> Console:
    """stdout's console on a terminal; a fixed-width one when piped (no wrapping at 80)."""
    out = consoles.stdout()
    if out.is_terminal:
        return out
    return Console(width=PIPED_WIDTH, highlight=False, soft_wrap=False, no_color=True)


def print_dashboard(report: StatsReport) -> None:
    out = dashboard_console()
    out.print(stats_dashboard(report, out.width))
