"""Render inspect --compression: one table per namespace, then the recommendation."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cachectl.compressibility import CandidateEstimate, CompressionReport, NamespaceCompression
from cachectl.policy.units import format_size_bytes


def _size(n: int) -> str:
    return format_size_bytes(n) if abs(n) >= 1024 else f"{n} B"


def _table(ns: NamespaceCompression) -> Table:
    title = (f"{ns.namespace}: {ns.keys:,} keys, {ns.sampled:,} sampled, values "
             f"{_size(ns.value_memory_bytes)} in memory now"
             + (f", {ns.framed_now:,} sampled already compressed" if ns.framed_now else "")
             + (f" (policy: {ns.current})" if ns.current else ""))
    table = Table(title=title, title_justify="left")
    for name in ("codec", "level", "min_bytes", "ratio", "framed", "saved (95 %)", "saved %",
                 "compress µs", "decompress µs"):
        table.add_column(name, justify="left" if name == "codec" else "right")
    for c in ns.candidates:
        mark = " *" if c is ns.recommended else ""
        table.add_row(c.codec + mark, str(c.level), _size(c.min_bytes), f"{c.ratio:.2f}x",
                      f"{c.compressed_share:.0%}",
                      f"{_size(c.saved_bytes)} ± {_size(c.saved_margin_bytes)}",
                      f"{c.saved_share:.1%}", f"{c.compress_us:.1f}", f"{c.decompress_us:.1f}")
    return table


def _snippet(c: CandidateEstimate) -> str:
    return f"compress: {{codec: {c.codec}, level: {c.level}, min_bytes: {c.min_bytes}B}}"


def compression_report(report: CompressionReport) -> RenderableType:
    """Per namespace, each candidate; then which namespaces to compress, and how."""
    parts: list[RenderableType] = [_table(ns) for ns in report.namespaces if ns.candidates]
    lines = Text("recommendation (* above):\n", style="bold")
    for ns in report.namespaces:
        c = ns.recommended
        if c is None:
            lines.append(f"  {ns.namespace}: {ns.reason}\n")
        else:
            lines.append(f"  {ns.namespace}: {_snippet(c)}  saves {_size(c.saved_bytes)} "
                         f"± {_size(c.saved_margin_bytes)} ({c.saved_share:.0%} of its values' "
                         f"memory; {ns.reason})\n")
    parts.append(lines)
    parts.append(Text(f"CPU measured on this machine; {report.sample:,} values sampled per "
                      f"namespace in {report.elapsed_s:.1f}s", style="dim"))
    return Group(*parts)
