"""cachectl apply: carry out a policy change's plan on the live cache, safely."""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager, closing, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cachectl.cli.options import (
    BatchOpt,
    DryRunOpt,
    JsonOpt,
    PaceRateOpt,
    RedisOptions,
    YesOpt,
    redis_options,
    stop_on_sigint,
)
from cachectl.cli.plan import BaseOpt, PoliciesArg, SampleOpt, load_pair
from cachectl.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from cachectl.plan import PolicyPlan


def _policies_of(plan_file: Path) -> tuple[PolicyPlan, list[Path], str | None]:
    """The plan in ``plan_file`` and the OLD NEW (or NEW and --base) it was made from."""
    from cachectl.errors import UsageError
    from cachectl.files import open_regular
    from cachectl.plan import plan_from_json

    try:
        with open_regular(plan_file) as fh:  # a FIFO would block
            doc = json.loads(fh.read())
    except OSError as exc:
        raise UsageError(f"cannot read plan {plan_file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{plan_file} is not JSON ({exc})",
                         hint="save it with cachectl plan OLD NEW --url … --json > plan.json") from None
    given = plan_from_json(doc)
    old, new = Path(given.old_path), Path(given.new_path)
    if not old.exists() and "@" in given.old_path:  # made with --base REF
        path, _, ref = given.old_path.rpartition("@")
        if Path(path) == new:
            return given, [new], ref
    return given, [old, new], None


@redis_options
def command(
    conn: RedisOptions,
    policies: PoliciesArg = None,
    base: BaseOpt = None,
    plan_file: Annotated[Path | None, typer.Option(
        "--plan", metavar="PATH", help="A plan saved by cachectl plan --url … --json; refused "
        "when the policies or the keyspace no longer match it.")] = None,
    warm: Annotated[bool, typer.Option(
        "--warm", help="Warm added and re-keyed namespaces from their sources first.")] = False,
    sample: SampleOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    rate: PaceRateOpt = None,
    batch: BatchOpt = 1000,
    json_out: JsonOpt = False,
) -> int:
    """Apply a policy change: clamp TTLs above the new maximum, remove orphaned keys.

    Measures first and shows the counts; asks before changing anything (--yes for
    scripts). Interrupted, rerun it to finish; run twice, the second finds nothing.

    Example: cachectl apply old.yaml new.yaml --url redis://cache:6379/0 --yes
    """
    from cachectl import plan as core
    from cachectl.cli.flush import can_ask
    from cachectl.connection import redis_errors
    from cachectl.errors import InterruptedWork, UsageError
    from cachectl.flush import check_pacing, current_actor
    from cachectl.render import console
    from cachectl.render import flush as flush_render
    from cachectl.render import plan as render

    given = None
    if plan_file is not None:
        if policies:
            raise UsageError("give either OLD NEW or --plan, not both",
                             hint="cachectl apply --plan plan.json --url …")
        given, policies, base = _policies_of(plan_file)
    old, new, old_name, new_name = load_pair(policies or [], base)
    check_pacing(rate, batch)
    settings = conn.settings(new)
    client = conn.connect(new)
    with closing(client), redis_errors(settings):
        plan = core.diff_policies(old, new, old_path=old_name, new_path=new_name)
        with _bars() as bar:
            plan = core.measure_plan(client, plan, old, new,
                                     sample=core.apply_sample(client, sample), on_progress=bar)
        if given is not None:
            core.check_plan_current(given, plan)
        if dry_run:
            result = core.apply_plan(client, plan, old, new, dry_run=True)
            _show(result, json_out)
            return 0
        to_clamp, to_remove = core.keys_to_clamp(plan), core.keys_to_remove(plan)
        if to_clamp or to_remove or plan.live_mode == "sample":
            flush_render.say(render.plan_text(plan).rstrip("\n"))
            if not (yes or can_ask()):
                raise UsageError("refusing to apply without confirmation: not a terminal",
                                 hint="pass --yes to apply from a script, or --dry-run to see "
                                 "what would change")
            estimated = plan.live_mode == "sample"
            question = (f"Clamp {flush_render.count_text(to_clamp, estimated)} and remove "
                        f"{flush_render.count_text(to_remove, estimated)}?")
            if not yes and not typer.confirm(question, default=False, err=True):
                flush_render.say("nothing was changed")
                return 1
        with stop_on_sigint() as stop, _bars() as bar:
            try:
                result = core.apply_plan(
                    client, plan, old, new, warm=warm, env=os.environ, rate=rate, batch=batch,
                    on_progress=bar, should_stop=stop.is_set, actor=current_actor())
            except InterruptedWork as exc:
                flush_render.say("interrupted: rerun the same command to finish")
                if exc.partial is not None and json_out:
                    console.emit_json(exc.partial)
                raise
    _show(result, json_out)
    return 0


def _bars() -> AbstractContextManager[ProgressCallback]:
    from cachectl.render import console

    if not console.is_terminal():
        return nullcontext(no_progress)
    from cachectl.render.progress import progress_bars

    return progress_bars(enabled=True)


def _show(result: object, json_out: bool) -> None:
    import sys

    from cachectl.plan.apply import ApplyResult
    from cachectl.render import console
    from cachectl.render import plan as render

    assert isinstance(result, ApplyResult)
    if json_out:
        console.emit_json(result)
    else:
        sys.stdout.write(render.apply_text(result))
