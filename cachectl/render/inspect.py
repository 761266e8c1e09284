"""Render inspect results: key panels, namespace listings, the summary (Rich or JSON)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cachectl.inspect import InspectSummary, KeyDetail, NodeRow
from cachectl.policy.units import format_duration_ms, format_size_bytes
from cachectl.render.console import display_key, jsonable

_STATE_STYLE = {"fresh": "green", "stale": "yellow", "fail_safe": "magenta", "no_ttl": "red",
                "gone": "dim"}


def _ttl(pttl_ms: int) -> str:
    if pttl_ms == -1:
        return "none"
    if pttl_ms == -2:
        return "gone"
    return format_duration_ms(pttl_ms)


def _fits(detail: KeyDetail) -> Text:
    if detail.ttl_fits is None:
        return Text("-")
    if detail.ttl_fits:
        return Text("yes", style="green")
    limit = format_duration_ms(detail.ttl_max_ms) if detail.ttl_max_ms is not None else "?"
    return Text(f"no (policy allows at most {limit})", style="red")


def key_panel(detail: KeyDetail) -> Panel:
    """One key as a panel: facts, then the value preview."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    if not detail.exists:
        grid.add_row("namespace", detail.namespace or "(none)")
        grid.add_row("state", Text("missing", style="red"))
        return Panel(grid, title=Text(display_key(detail.key)), title_align="left")
    params = ", ".join(f"{k}={v}" for k, v in detail.params)
    grid.add_row("namespace", Text(detail.namespace or "(none: matches no namespace)",
                                   style="" if detail.namespace else "yellow"))
    if params:
        grid.add_row("params", params)
    grid.add_row("type", f"{detail.type} ({detail.encoding or '?'})")
    if detail.length is not None:
        unit = "bytes" if detail.type == "string" else "elements"
        grid.add_row("length", f"{detail.length:,} {unit}")
    if detail.codec is not None and detail.plain_bytes is not None and detail.length:
        grid.add_row("compressed", f"{detail.codec}: {detail.length:,} B stored, "
                     f"{detail.plain_bytes:,} B plain ({detail.plain_bytes / detail.length:.1f}x)")
    elif detail.frame_error is not None:
        grid.add_row("compressed", Text(f"corrupt frame: {detail.frame_error}", style="red"))
    if detail.memory_bytes is not None:
        grid.add_row("memory", f"{format_size_bytes(detail.memory_bytes)} "
                                f"({detail.memory_bytes:,} B)")
    grid.add_row("ttl", _ttl(detail.pttl_ms))
    if detail.freshness:
        grid.add_row("state", Text(detail.freshness, style=_STATE_STYLE.get(detail.freshness, "")))
    grid.add_row("ttl fits policy", _fits(detail))
    if detail.idle_s is not None:
        grid.add_row("idle", format_duration_ms(detail.idle_s * 1000))
    parts: list[Any] = [grid]
    if detail.preview is not None:
        more = " (truncated)" if detail.preview_truncated else ""
        parts.append(Text(f"\nvalue ({detail.preview_format}){more}:", style="bold"))
        parts.append(Text(detail.preview))
    return Panel(Group(*parts), title=Text(display_key(detail.key)), title_align="left")


def print_wide(out: Console, renderable: Any) -> None:
    """Print; when piped, wide enough that tables are not cut at 80 columns."""
    if out.is_terminal:
        out.print(renderable)
        return
    wide = Console(file=out.file, width=max(out.width, 200), highlight=False, soft_wrap=False,
                   no_color=out.no_color)
    wide.print(renderable)


def print_key_details(details: Iterable[KeyDetail], out: Console) -> None:
    for detail in details:
        out.print(key_panel(detail))


def listing_table(rows: Iterable[KeyDetail]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("key", "left"), ("type", "left"), ("encoding", "left"),
                          ("memory", "right"), ("ttl", "right"), ("state", "left"),
                          ("fits", "left"), ("idle", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for d in rows:
        table.add_row(
            Text(display_key(d.key)), d.type, d.encoding or "-",
            format_size_bytes(d.memory_bytes) if d.memory_bytes is not None else "-",
            _ttl(d.pttl_ms),
            Text(d.freshness or "-", style=_STATE_STYLE.get(d.freshness or "", "")),
            Text("yes", style="green") if d.ttl_fits else Text("no", style="red"),
            format_duration_ms(d.idle_s * 1000) if d.idle_s is not None else "-")
    return table


def _pm(value: int, margin: int, fmt: Any) -> str:
    return f"{fmt(value)} ± {fmt(margin)}" if margin else fmt(value)


def _count(n: int) -> str:
    return f"{n:,}"


def summary_tables(s: InspectSummary) -> Group:
    """The summary: one row per namespace, then unmatched patterns, then a footer."""
    table = Table(show_edge=False, pad_edge=False, title_justify="left")
    # a policy that compresses gets a column: the share of each namespace's values
    # stored as compression frames
    compressing = any(r.compressed_share is not None for r in s.namespaces)
    for name in ("namespace", "keys", "memory", "share", "ttl min", "median", "max",
                 "fresh", "stale", "fail-safe", "no ttl", *(("compressed",) if compressing else ())):
        table.add_column(name, justify="left" if name == "namespace" else "right", no_wrap=True)
    for r in s.namespaces:
        extra = (("-" if r.compressed_share is None else f"{r.compressed_share:.0%}",)
                 if compressing else ())
        table.add_row(
            r.namespace, _pm(r.keys, r.keys_margin, _count),
            _pm(r.memory_bytes, r.memory_margin_bytes, format_size_bytes),
            f"{r.memory_share:.1%}" if r.memory_share is not None else "-",
            format_duration_ms(r.ttl_min_ms) if r.ttl_min_ms is not None else "-",
            format_duration_ms(r.ttl_median_ms) if r.ttl_median_ms is not None else "-",
            format_duration_ms(r.ttl_max_ms) if r.ttl_max_ms is not None else "-",
            _count(r.fresh), _count(r.stale), _count(r.fail_safe),
            Text(_count(r.no_ttl), style="red" if r.no_ttl else ""), *extra)
    parts: list[Any] = [table]
    if s.unmatched:
        other = Table(show_edge=False, pad_edge=False, title="keys matching no namespace",
                      title_justify="left", title_style="bold yellow")
        other.add_column("pattern")
        other.add_column("keys", justify="right")
        other.add_column("memory", justify="right")
        other.add_column("example")
        for p in s.unmatched[:20]:
            other.add_row(Text(p.pattern), _count(p.keys), format_size_bytes(p.memory_bytes),
                          Text(display_key(p.example)))
        if len(s.unmatched) > 20:
            other.add_row(f"… {len(s.unmatched) - 20} more patterns (--json lists all)", "", "", "")
        parts += [Text(""), other]
    if len(s.nodes) > 1:
        parts += [Text(""), node_table(s.nodes, [r.namespace for r in s.namespaces])]
    parts.append(Text(""))
    parts.append(Text(footer(s), style="dim"))
    return Group(*parts)


def node_table(nodes: Iterable[NodeRow], order: list[str] | None = None) -> Table:
    """Keys and memory per namespace on each primary: one column per node, one row per
    namespace (in ``order``, else policy order), then the unmatched keys and the node's
    own DBSIZE and used memory."""
    nodes = list(nodes)
    estimated = any(n.estimated for n in nodes)
    table = Table(show_edge=False, pad_edge=False, title_justify="left",
                  title="per node" + (" (estimated)" if estimated else ""))
    table.add_column("namespace", no_wrap=True)
    for n in nodes:
        table.add_column(n.node, justify="right", no_wrap=True)
    names = order or ([r.namespace for r in nodes[0].namespaces] if nodes else [])
    cells = [{r.namespace: r for r in n.namespaces} for n in nodes]

    def cell(keys: int, size: int) -> str:
        return f"{keys:,} · {format_size_bytes(size)}" if keys else "-"

    for name in names:
        table.add_row(name, *(cell(c[name].keys, c[name].memory_bytes) if name in c else "-"
                              for c in cells))
    if any(n.unmatched_keys for n in nodes):
        table.add_row(Text("(unmatched)", style="yellow"),
                      *(cell(n.unmatched_keys, n.unmatched_bytes) for n in nodes))
    table.add_row(Text("all keys · used memory", style="dim"),
                  *(Text(cell(n.keys, n.used_memory_bytes), style="dim") for n in nodes))
    return table


def footer(s: InspectSummary) -> str:
    if s.mode == "sample":
        how = (f"estimated from {s.measured_keys:,} measured of {s.scanned_keys:,} sampled keys "
               f"(± is the 95 % margin)")
    else:
        how = f"exact: {s.measured_keys:,} keys measured"
    extra = []
    if s.expired_during_scan:
        extra.append(f"{s.expired_during_scan:,} expired during the scan")
    if s.denied_keys:
        extra.append(f"{s.denied_keys:,} refused by the ACL")
    if s.internal_keys:
        extra.append(f"{s.internal_keys:,} cachectl keys")
    tail = f"; {'; '.join(extra)}" if extra else ""
    return (f"{s.total_keys:,} keys on {len(s.nodes)} node(s), used memory "
            f"{format_size_bytes(s.used_memory_bytes)}; {how} in {s.elapsed_s:.2f}s{tail}")


def summary_json(s: InspectSummary) -> dict[str, Any]:
    doc: dict[str, Any] = jsonable(s)
    return doc
