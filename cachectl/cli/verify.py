"""cachectl verify: compare cached values with their source of truth."""

from contextlib import closing
from typing import Annotated, Any

import typer

from cachectl.cli.flush import can_ask
from cachectl.cli.options import (
    BatchOpt,
    JsonOpt,
    NamespaceOpt,
    PaceRateOpt,
    PolicyOpt,
    RedisOptions,
    YesOpt,
    load_cli_policy,
    redis_options,
)

COMMAND_SETTINGS: dict[str, Any] = {}


@redis_options
def command(
    conn: RedisOptions,
    namespace: NamespaceOpt = None,
    sample: Annotated[int, typer.Option(
        "--sample", metavar="N", help="Keys checked per namespace, a uniform random sample.")] = 200,
    all_keys: Annotated[bool, typer.Option(
        "--all", help="Check every live key (exact counts, no margin).")] = False,
    seed: Annotated[int | None, typer.Option(
        "--seed", metavar="N", help="Repeat a run's sample exactly.")] = None,
    examples: Annotated[int, typer.Option(
        "--examples", metavar="N", help="Differing keys shown per namespace.")] = 5,
    fix: Annotated[bool, typer.Option(
        "--fix", help="Rewrite differing keys from the source and remove keys whose row is "
        "gone (counts first, asks on a terminal).")] = False,
    yes: YesOpt = False,
    rate: PaceRateOpt = None,
    batch: BatchOpt = 1000,
    json_out: JsonOpt = False,
    policy: PolicyOpt = None,
) -> int:
    """Verify that cached values still match their warm source (a sample, or --all).

    Per namespace: keys checked, identical, different, missing from the source and
    unparseable, each in its freshness band; exit 1 when the keys that differ while fresh
    exceed thresholds.max_inconsistency (0 for critical namespaces by default).

    Example: cachectl verify --namespace product --sample 500
    """
    import os

    from cachectl import verify
    from cachectl.connection import redis_errors
    from cachectl.errors import UsageError
    from cachectl.flush import check_pacing
    from cachectl.render import console
    from cachectl.render import flush as say_render
    from cachectl.render import verify as render

    pol = load_cli_policy(policy)
    if fix:
        check_pacing(rate, batch)
        if not (yes or can_ask()):
            raise UsageError("refusing to fix without confirmation: not a terminal",
                             hint="pass --yes to fix from a script")
    if examples < 0:
        raise UsageError(f"--examples {examples} must be 0 or more")
    settings = conn.settings(pol)
    client = conn.connect(pol)
    with closing(client), redis_errors(settings):
        report = verify.verify_namespaces(
            client, pol, namespace or (), sample=None if all_keys else sample, seed=seed,
            env=dict(os.environ), examples=examples)
        if fix and report.repairs:
            rewrite = sum(1 for n in report.namespaces for r in n.repairs if r.stored is not None)
            remove = report.repairs - rewrite
            question = (f"Rewrite {rewrite:,} keys from the source and remove {remove:,} keys "
                        "whose row is gone?")
            if yes or typer.confirm(question, default=False, err=True):
                from dataclasses import replace

                fixed = verify.fix_namespaces(client, pol, report, rate=rate, batch=batch)
                report = replace(report, fixed=fixed)
            else:
                say_render.say("nothing was fixed")
    if json_out:
        console.emit_json(report)
    else:
        render.render_report(report, console.stdout())
    if report.record_error:
        say_render.say(f"warning: the result could not be recorded in "
                       f"{verify.record_key(pol)}: {report.record_error}")
    # the verdict is what the run found, fixed or not: the cache served those values
    return 1 if report.exceeded else 0
