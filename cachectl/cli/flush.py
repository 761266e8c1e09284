"""cachectl flush: remove or soften exactly the keys of chosen namespaces, safely."""

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, closing, nullcontext
from typing import Annotated, Any

import typer

from cachectl.cli.options import (
    BatchOpt,
    DryRunOpt,
    JsonOpt,
    NamespaceOpt,
    PaceRateOpt,
    PolicyOpt,
    RedisOptions,
    YesOpt,
    load_cli_policy,
    redis_options,
    stop_on_sigint,
)
from cachectl.progress import ProgressCallback, no_progress

COMMAND_SETTINGS: dict[str, Any] = {}


def can_ask() -> bool:
    """Whether a confirmation can be asked: stdin and stderr are both terminals."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@redis_options
def command(
    conn: RedisOptions,
    params: Annotated[list[str] | None, typer.Argument(
        metavar="PARAM=VALUE", help="With --key: the template's placeholder values.",
        show_default=False)] = None,
    namespace: NamespaceOpt = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", "-t", metavar="TAG", help="Every namespace carrying this tag (repeatable).")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", metavar="NS", help="The one key namespace NS renders from PARAM=VALUE…")] = None,
    pattern: Annotated[str | None, typer.Option(
        "--pattern", metavar="GLOB", help="A raw SCAN glob (needs --force; never '*').")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Allow --pattern (keys no namespace vouches for).")] = False,
    soft: Annotated[bool, typer.Option(
        "--soft", help="Shorten TTLs into the stale band instead of removing: served stale, "
        "revalidated one caller at a time.")] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    rate: PaceRateOpt = None,
    batch: BatchOpt = 1000,
    history: Annotated[bool, typer.Option(
        "--history", help="List past flushes from the audit stream instead.")] = False,
    limit: Annotated[int, typer.Option(
        "--limit", metavar="N", help="Entries (--history) or example keys per target "
        "(--dry-run) to list.")] = 20,
    json_out: JsonOpt = False,
    policy: PolicyOpt = None,
) -> int:
    """Flush namespaces: UNLINK (or, with --soft, expire into the stale band) exactly their keys.

    Counts first, shows examples and asks on a terminal (--yes for scripts); paces
    itself by the server's latency; records each run in an audit stream.

    Example: cachectl flush --tag catalog --soft --yes
    """
    from cachectl import flush
    from cachectl.connection import redis_errors
    from cachectl.errors import CachectlError, UsageError
    from cachectl.render import console
    from cachectl.render import flush as render

    def progress_bars() -> AbstractContextManager[ProgressCallback]:
        if not console.is_terminal():  # no bars, and no Rich to import
            return nullcontext(no_progress)
        from cachectl.render.progress import progress_bars as bars

        return bars(enabled=True)

    pol = load_cli_policy(policy)
    if history:
        settings = conn.settings(pol)
        client = conn.connect(pol)
        with closing(client), redis_errors(settings):
            entries = flush.read_history(client, pol, limit)
        if json_out:
            console.emit_json(render.history_json(flush.audit_key(pol), entries))
        else:
            render.render_history(flush.audit_key(pol), entries, console.stdout())
        return 0

    targets = flush.select_targets(
        pol, namespaces=namespace or (), tags=tag or (), key=key, key_params=params or (),
        pattern=pattern, force=force, soft=soft)
    flush.check_pacing(rate, batch)
    if not (dry_run or yes or can_ask()):
        raise UsageError("refusing to flush without confirmation: not a terminal",
                         hint="pass --yes to flush from a script, or --dry-run to see what "
                         "would be flushed")
    settings = conn.settings(pol)
    client = conn.connect(pol)
    try:
        return _flush(client, settings, pol, targets, progress_bars, soft=soft, dry_run=dry_run,
                      yes=yes, rate=rate, batch=batch, limit=limit, json_out=json_out)
    except CachectlError as exc:
        # interrupted, or Redis failed part-way: what was done is reported all the same
        from cachectl import flush

        if isinstance(exc.partial, flush.FlushResult):
            _show(exc.partial, json_out)
        raise


def _flush(client: Any, settings: Any, pol: Any, targets: Any,
           progress_bars: Callable[[], AbstractContextManager[ProgressCallback]], *,
           soft: bool, dry_run: bool, yes: bool, rate: float | None, batch: int, limit: int,
           json_out: bool) -> int:
    """Count, confirm and flush on an open client; the command reports a partial result."""
    from cachectl import flush
    from cachectl.connection import redis_errors
    from cachectl.render import flush as render

    with closing(client), redis_errors(settings):
        if dry_run:
            with progress_bars() as bar:
                result = flush.flush_namespaces(client, pol, targets, soft=soft, dry_run=True,
                                               batch=batch, on_progress=bar, examples=limit)
            _show(result, json_out)
            return 0
        plan = flush.plan_flush(client, pol, targets, soft=soft)
        if plan.keys == 0 and not plan.estimated:
            render.say("nothing to flush: no key of " + "; ".join(t.target for t in plan.targets))
        else:
            render.render_plan(plan)
            question = (f"{'Soften' if soft else 'Remove'} "
                        f"{render.count_text(plan.keys, plan.estimated)}?")
            if not yes and not typer.confirm(question, default=False, err=True):
                render.say("nothing was flushed")
                return 1
        totals = {t.target: t.keys for t in plan.targets}
        with stop_on_sigint() as stop, progress_bars() as bar:
            result = flush.flush_namespaces(
                client, pol, targets, soft=soft, rate=rate, batch=batch, on_progress=bar,
                totals=totals, should_stop=stop.is_set, actor=flush.current_actor())
    _show(result, json_out)
    if result.audit_error:
        render.say(f"warning: the flush is done, but its audit entry could not be written to "
                   f"{flush.audit_key(pol)}: {result.audit_error}",
                   "hint: grant the user XADD on that key (see docs/topologies.md, 'Least-privilege ACL')")
        return 1
    return 0


def _show(result: Any, json_out: bool) -> None:
    from cachectl.render import console
    from cachectl.render import flush as render

    if json_out:
        console.emit_json(result)
    else:
        render.render_result(result, console.stdout())
