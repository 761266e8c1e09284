"""cachectl plan: what a policy change does to the live cache, before it is merged."""

from __future__ import annotations

import os
import sys
from contextlib import closing
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cachectl.cli.options import JsonOpt, RedisOptions, redis_options

if TYPE_CHECKING:
    from cachectl.plan import PolicyPlan
    from cachectl.policy import Policy


class PlanFormat(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    JSON = "json"


class FailOn(StrEnum):
    NEVER = "never"
    DESTRUCTIVE = "destructive"


SampleOpt = Annotated[int | None, typer.Option(
    "--sample", metavar="N", min=1,
    help="Estimate the live figures from N measured keys (95 % margins) instead of "
    "measuring every key.")]
BaseOpt = Annotated[str | None, typer.Option(
    "--base", metavar="REF", help="Read the old policy from git at REF (NEW's own path); "
    "then give NEW alone.")]
PoliciesArg = Annotated[list[Path] | None, typer.Argument(
    metavar="OLD NEW", help="The policy before and after the change.", show_default=False)]


def load_pair(paths: list[Path], base: str | None) -> tuple[Policy, Policy, str, str]:
    """The old and new policies (and how to name them) from OLD NEW, or NEW with --base."""
    from cachectl.errors import UsageError
    from cachectl.plan import read_policy_at
    from cachectl.policy import load_policy

    if base is not None:
        if len(paths) != 1:
            raise UsageError("with --base give only the new policy",
                             hint="cachectl plan cachectl.yaml --base main")
        new_path = paths[0]
        new = load_policy(new_path, env=os.environ)
        return read_policy_at(new_path, base, os.environ), new, f"{new_path}@{base}", str(new_path)
    if len(paths) != 2:
        raise UsageError(f"give the old and the new policy ({len(paths)} given)",
                         hint="cachectl plan old.yaml new.yaml, or cachectl plan new.yaml --base main")
    old_path, new_path = paths
    return (load_policy(old_path, env=os.environ), load_policy(new_path, env=os.environ),
            str(old_path), str(new_path))


def wants_live(conn: RedisOptions) -> bool:
    """Measure only when a server is named on the command line (CI runs plan without one)."""
    return bool(conn.url or conn.cluster or conn.sentinel)


@redis_options
def command(
    conn: RedisOptions,
    policies: PoliciesArg = None,
    base: BaseOpt = None,
    sample: SampleOpt = None,
    output: Annotated[PlanFormat, typer.Option(
        "--format", help="text, markdown (a pull-request comment) or json.")] = PlanFormat.TEXT,
    fail_on: Annotated[FailOn, typer.Option(
        "--fail-on", help="Exit 1 when the change is destructive (orphans or removes keys).")]
    = FailOn.NEVER,
    trace: Annotated[list[Path] | None, typer.Option(
        "--trace", metavar="FILE", help="An access trace (as cachectl model reads): predict "
        "each namespace's hit rate before and after (repeatable).")] = None,
    json_out: JsonOpt = False,
) -> int:
    """Show what changing the policy does to each namespace and, with --url, to the live cache.

    Added, removed, renamed and re-keyed namespaces; TTL, stale, jitter and threshold
    changes; with --url, keys and bytes affected and keys whose TTL is above the new
    maximum. Reads the cache only.

    Example: cachectl plan cachectl.yaml --base main --url redis://cache:6379/0 --format markdown
    """
    from cachectl import plan as core
    from cachectl.connection import redis_errors

    old, new, old_name, new_name = load_pair(policies or [], base)
    plan = core.diff_policies(old, new, old_path=old_name, new_path=new_name)
    if wants_live(conn):
        settings = conn.settings(new)
        client = conn.connect(new)
        with closing(client), redis_errors(settings):
            plan = core.measure_plan(client, plan, old, new, sample=sample)
    if trace:
        from cachectl.plan.predict import predict_hit_rates

        plan = predict_hit_rates(plan, old, new, trace)
    show(plan, PlanFormat.JSON if json_out else output)
    return 1 if fail_on is FailOn.DESTRUCTIVE and plan.destructive else 0


def show(plan: PolicyPlan, output: PlanFormat) -> None:
    from cachectl.render import console
    from cachectl.render import plan as render

    if output is PlanFormat.JSON:
        console.emit_json(plan)
    elif output is PlanFormat.MARKDOWN:
        sys.stdout.write(render.plan_markdown(plan))
    else:
        sys.stdout.write(render.plan_text(plan))
