"""Render flush plans, results and the audit history: Rich text or JSON."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from cachectl.flush import AuditEntry, FlushMode, FlushPlan, FlushResult, changed_word
from cachectl.render import console as consoles
from cachectl.render.console import display_key

if TYPE_CHECKING:  # Rich is imported when a table is drawn, not for `flush --yes --json`
    from rich.console import Console
    from rich.text import Text


def count_text(n: int, estimated: bool) -> str:
    """``1 key``, ``1,200 keys``, ``~5,000 keys``."""
    return f"{'~' if estimated else ''}{n:,} key{'' if n == 1 and not estimated else 's'}"


def plan_text(plan: FlushPlan) -> list[str]:
    """The lines shown before a confirmation: how many keys, where, and a few examples."""
    verb = "soften" if plan.mode is FlushMode.SOFT else "remove"
    how = (f"estimated from a sample of {plan.sampled_keys:,} of {plan.dbsize:,} keys"
           if plan.estimated else "counted")
    lines = [f"About to {verb} {count_text(plan.keys, plan.estimated)} ({how}):"]
    for t in plan.targets:
        extra = f", PTTL -> {t.soft_pttl_ms:,} ms" if t.soft_pttl_ms is not None else ""
        lines.append(f"  {t.target}: {count_text(t.keys, t.estimated)}{extra}")
        if t.kind != "key":  # a named key is its own example
            lines.extend(f"      {display_key(k)}" for k in t.examples)
    return lines


def say(*lines: str) -> None:
    """Lines for the operator on stderr: through Rich on a terminal, plain otherwise.

    A script running ``flush --yes --json`` then never loads Rich (tens of ms of
    start-up), and its log gets each line whole instead of wrapped at 80 columns.
    """
    if consoles.is_terminal():
        err = consoles.stderr()
        for line in lines:
            err.print(line, markup=False, highlight=False)
    else:
        sys.stderr.write("".join(f"{line}\n" for line in lines))
        sys.stderr.flush()


def render_plan(plan: FlushPlan) -> None:
    """The plan on stderr (stdout stays for the result, or its JSON)."""
    say(*plan_text(plan))


def render_result(result: FlushResult, console: Console) -> None:
    """The summary: per target and in total, matched / removed or softened / skipped."""
    from rich.table import Table
    from rich.text import Text

    changed = changed_word(result.mode)
    title = "flush (dry run)" if result.dry_run else (
        "flush, interrupted" if result.interrupted else f"flush ({result.mode.value})")
    table = Table(title=title, title_justify="left")
    table.add_column("target")
    table.add_column("matched", justify="right")
    if not result.dry_run:
        table.add_column(changed, justify="right")
        table.add_column("skipped", justify="right")
    for t in result.targets:
        row: list[str | Text] = [Text(t.target), f"{t.matched:,}"]
        if not result.dry_run:
            row += [f"{t.changed:,}", _skipped(t.vanished, t.other_namespace, t.already_stale)]
        table.add_row(*row)
    console.print(table)
    if result.dry_run:
        for t in result.targets:
            if t.examples:
                console.print(f"{t.target}, first {len(t.examples)} keys:", markup=False)
                for k in t.examples:
                    console.print(f"  {display_key(k)}", markup=False, highlight=False)
    summary = (("nothing changed; " if result.dry_run else "") + f"matched {result.matched:,}"
               + ("" if result.dry_run else
               f", {changed} {result.changed:,}, skipped {result.skipped:,}")
               + f" in {result.seconds:.2f} s ({result.keys_per_s:,.0f} keys/s)")
    if result.backoffs:
        summary += (f"; slowed down {result.backoffs}x for server latency "
                    f"(max PING {result.max_ping_ms:.1f} ms)")
    console.print(summary, markup=False)
    no_ttl = sum(t.no_ttl for t in result.targets)
    if no_ttl:
        console.print(f"{no_ttl:,} key(s) had no TTL (never written by cachectl); they now expire "
                      "at the top of the stale band too", markup=False)
    if result.uncertain:
        console.print(f"{result.uncertain:,} more key(s) were in a batch whose reply never came: "
                      f"Redis may have {changed} them (not counted above)", markup=False)
    if result.audit_id:
        console.print(f"audit entry {result.audit_id} (cachectl flush --history)", markup=False,
                      style="dim")


def _skipped(vanished: int, other: int, already: int) -> str:
    total = vanished + other + already
    parts = [f"{n:,} {what}" for n, what in ((vanished, "gone"), (other, "other namespace"),
                                              (already, "already stale")) if n]
    return f"{total:,}" + (f" ({', '.join(parts)})" if parts else "")


def history_json(key: str, entries: tuple[AuditEntry, ...]) -> dict[str, Any]:
    return {"stream": key, "entries": list(entries)}


def render_history(key: str, entries: tuple[AuditEntry, ...], console: Console) -> None:
    if not entries:
        console.print(f"no flush recorded yet in {key}", markup=False)
        return
    # one line per run (like `git log --oneline`): stays readable at any width
    console.print(f"flush history ({key}, newest first)", markup=False, style="bold")
    for e in entries:
        verb = changed_word(e.mode)
        when = e.time.replace("T", " ").removesuffix("+00:00")
        console.print(f"{when}Z  {e.user}@{e.host}  {e.mode}  {e.what}: matched {e.matched:,}, "
                      f"{verb} {e.changed:,}, skipped {e.skipped:,} in {e.seconds:.2f} s"
                      + ("  (interrupted)" if e.interrupted else ""),
                      markup=False, highlight=False, soft_wrap=True)
