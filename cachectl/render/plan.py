"""Render a policy plan (text, Markdown for a pull-request comment) and apply's result.

Both formats draw the same rows (``plan_rows``); JSON is the plan's own ``to_json``.
"""

from __future__ import annotations

from cachectl.flush import changed_word
from cachectl.plan import Change, FieldChange, NamespacePlan, PolicyPlan
from cachectl.plan.apply import ApplyResult, keys_to_clamp, keys_to_remove
from cachectl.policy.units import format_duration_ms, format_size_bytes

HEADERS = ("namespace", "change", "what changes", "keys", "bytes", "TTL above max", "apply")
_MS_FIELDS = {"ttl_ms": "ttl", "stale_ms": "stale", "stale_if_error_ms": "stale_if_error"}
_WORDS = {Change.REKEYED: "re-keyed"}


def _value(field: str, value: object) -> str:
    if value is None:
        return "—"
    if field in _MS_FIELDS or field.endswith("_ms"):
        if value == 0:
            return "0s"  # as a policy writes it
        return format_duration_ms(value) if isinstance(value, int | float) else str(value)
    if field in ("jitter", "hit_rate") or field.endswith("_ratio") or field.endswith("hit_rate"):
        return f"{value:.0%}" if isinstance(value, float) else str(value)
    if field.endswith("_bytes") and isinstance(value, int):
        return format_size_bytes(value)
    return str(value)


def field_text(f: FieldChange) -> str:
    name = _MS_FIELDS.get(f.field, f.field)
    return f"{name} {_value(f.field, f.old)} -> {_value(f.field, f.new)}"


def _pm(value: int, margin: int, text: str) -> str:
    return f"{text} ±{margin:,}" if margin else text


def _what(n: NamespacePlan) -> str:
    parts: list[str] = []
    if n.change is Change.RENAMED:
        parts.append(f"was {n.old_name}")
    if n.change is Change.ADDED:
        parts.append(f"key {n.new_key}")
    if n.change is Change.REMOVED:
        parts.append(f"key {n.old_key}")
    if n.reason:
        parts.append(n.reason)
    parts.extend(field_text(f) for f in n.fields)
    if n.clamp_ms is not None and n.old_ttl_max_ms is not None:
        parts.append(f"max TTL {format_duration_ms(n.old_ttl_max_ms)} -> "
                     f"{format_duration_ms(n.clamp_ms)}")
    p = n.predicted
    if p is not None:
        after = "—" if p.hit_rate_after is None else f"{p.hit_rate_after:.1%}"
        parts.append(f"predicted hit rate {p.hit_rate_before:.1%} -> {after}")
        if p.rekey_extra_loads is not None:
            parts.append(f"+{p.rekey_extra_loads:,} origin loads in the first 5 min")
    return "; ".join(parts) or "—"


def _apply(n: NamespacePlan) -> str:
    if n.action == "remove":
        return f"remove {n.old_key}"
    if n.action == "clamp" and n.clamp_ms is not None:
        return f"clamp TTL to {format_duration_ms(n.clamp_ms)}"
    if n.action == "warm":
        return "warm (with --warm)"
    return "—"


def plan_rows(plan: PolicyPlan) -> list[tuple[str, ...]]:
    """One row per namespace that changes (unchanged ones are counted in the summary)."""
    rows: list[tuple[str, ...]] = []
    for n in plan.namespaces:
        if n.change is Change.UNCHANGED and n.action == "none" and n.predicted is None:
            continue
        keys = bytes_ = above = "—"
        if n.live is not None:
            lv = n.live
            keys = _pm(lv.keys, lv.keys_margin, f"{lv.keys:,}")
            bytes_ = _pm(lv.memory_bytes, lv.memory_margin_bytes,
                         format_size_bytes(lv.memory_bytes))
            if n.clamp_ms is not None:
                above = _pm(lv.ttl_above_max, lv.ttl_above_max_margin, f"{lv.ttl_above_max:,}")
        rows.append((n.namespace, _WORDS.get(n.change, n.change.value), _what(n), keys, bytes_,
                     above, _apply(n)))
    return rows


def summary_line(plan: PolicyPlan) -> str:
    counts = [f"{plan.count(c)} {_WORDS.get(c, c.value)}" for c in Change if plan.count(c)]
    verdict = ("destructive: keys of removed or re-keyed namespaces become orphans"
               if plan.destructive else "not destructive")
    return f"{', '.join(counts) or 'no namespaces'}; {verdict}"


def _live_line(plan: PolicyPlan) -> str | None:
    if plan.live_mode is None:
        return None
    how = "estimated from a sample (± is the 95 % margin)" if plan.live_mode == "sample" \
        else "counted exactly"
    return (f"live: {plan.live_total_keys or 0:,} keys, {how}, in {plan.live_elapsed_s or 0:.1f} s; "
            f"apply would clamp {keys_to_clamp(plan):,} and remove {keys_to_remove(plan):,} keys")


def plan_text(plan: PolicyPlan) -> str:
    """The plan as an aligned text table with a summary."""
    lines = [f"plan: {plan.old_path} -> {plan.new_path} (fingerprint {plan.fingerprint})"]
    rows = plan_rows(plan)
    live = plan.measured
    headers = HEADERS if live else HEADERS[:3] + HEADERS[6:]
    table = [r if live else r[:3] + r[6:] for r in rows]
    if table:
        widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
        lines.append("")
        for row in (headers, *table):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    else:
        lines.append("no namespace changes")
    lines.append("")
    if plan.thresholds:
        lines.append("thresholds: " + "; ".join(field_text(f) for f in plan.thresholds))
    live_line = _live_line(plan)
    if live_line:
        lines.append(live_line)
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def _md(cell: str) -> str:
    return cell.replace("|", "\\|") if cell else " "


def plan_markdown(plan: PolicyPlan) -> str:
    """The plan as a Markdown comment for a pull request."""
    live = plan.measured
    headers = HEADERS if live else HEADERS[:3] + HEADERS[6:]
    out = [f"### cachectl plan: `{plan.old_path}` → `{plan.new_path}`", "",
           f"**{summary_line(plan)}**", ""]
    rows = [r if live else r[:3] + r[6:] for r in plan_rows(plan)]
    if rows:
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "---|" * len(headers))
        out.extend("| " + " | ".join(_md(c) for c in r) + " |" for r in rows)
        out.append("")
    if plan.thresholds:
        out.append("Thresholds: " + "; ".join(f"`{field_text(f)}`" for f in plan.thresholds))
        out.append("")
    live_line = _live_line(plan)
    out.append(live_line.capitalize() if live_line else
               "_Not measured against a live cache (run with `--url` for key counts)._")
    return "\n".join(out) + "\n"


def apply_text(result: ApplyResult) -> str:
    """What apply did (or, with --dry-run, would do)."""
    if result.dry_run:
        return plan_text(result.plan) + "dry run: nothing was changed\n"
    if result.nothing_to_do and result.clamped is None and result.removed is None:
        return "nothing to do: no key has a TTL above its new maximum, no old key is left\n"
    lines = []
    if result.warmed is not None:
        lines.append(f"warmed: {result.warmed.written:,} keys written")
    for step in (result.clamped, result.removed):
        if step is None:
            continue
        for t in step.targets:
            lines.append(f"{t.target}: {t.changed:,} {changed_word(step.mode)} of "
                         f"{t.matched:,} found")
        lines.append(f"  ({step.seconds:.1f} s, {step.batches} batch"
                     f"{'' if step.batches == 1 else 'es'}, max PING "
                     f"{step.max_ping_ms:.1f} ms, audit {step.audit_id or step.audit_error})")
    return "\n".join(lines) + "\n"
