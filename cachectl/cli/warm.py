"""cachectl warm: fill namespaces from their seed sources with the policy's TTLs."""


from typing import Annotated, Any

import typer

from cachectl.cli.options import (
    JsonOpt,
    NamespaceOpt,
    PolicyOpt,
    RedisOptions,
    load_cli_policy,
    redis_options,
    stop_on_sigint,
)

COMMAND_SETTINGS: dict[str, Any] = {}


def _overrides(values: list[str]) -> dict[str, str]:
    from pathlib import Path

    from cachectl.errors import UsageError

    found: dict[str, str] = {}
    for text in values:
        name, sep, path = text.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--source-override {text!r} is not NS=PATH",
                             hint="e.g. --source-override product=/tmp/products.jsonl.gz")
        if name in found:
            raise UsageError(f"--source-override names namespace {name} twice")
        found[name] = str(Path(path).expanduser().resolve())
    return found


@redis_options
def command(
    conn: RedisOptions,
    namespace: NamespaceOpt = None,
    source_override: Annotated[list[str] | None, typer.Option(
        "--source-override", metavar="NS=PATH",
        help="Read namespace NS from this file instead (repeatable; .jsonl/.json/.csv[.gz]).")]
    = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Read and validate every row; write nothing (needs no Redis).")]
    = False,
    only_missing: Annotated[bool, typer.Option(
        "--only-missing", help="Never overwrite a key that exists (SET … NX).")] = False,
    rate: Annotated[float | None, typer.Option(
        "--rate", metavar="N", help="At most N keys per second.")] = None,
    max_errors: Annotated[int | None, typer.Option(
        "--max-errors", metavar="N", help="Stop once more than N rows were rejected or "
        "refused [default: no limit].")] = None,
    json_out: JsonOpt = False,
    policy: PolicyOpt = None,
) -> int:
    """Warm namespaces from their seed sources (every namespace with a warm: source by default).

    Each row becomes SET <key from the template> <row as JSON> PX <the policy's TTL, jittered>;
    bad rows are reported with file:line and skipped. Exit 1 if any row was not written.

    Example: cachectl warm -p policies/ecommerce.yaml --namespace product --only-missing
    """
    import os

    from cachectl.connection import redis_errors
    from cachectl.errors import InterruptedWork, UsageError
    from cachectl.render import console
    from cachectl.render import warm as render
    from cachectl.warm import WarmReport, warm_namespaces

    pol = load_cli_policy(policy)
    overrides = _overrides(source_override or [])
    if max_errors is not None and max_errors < 0:
        raise UsageError(f"--max-errors {max_errors} must be 0 or more")

    def show(report: WarmReport) -> None:
        if json_out:
            console.emit_json(render.report_json(report))
        else:
            render.render_report(report, console.stdout())

    settings = conn.settings(pol)
    client = None if dry_run else conn.connect(pol)
    with redis_errors(settings), stop_on_sigint() as stop, render.warm_progress() as bar:
        try:
            report = warm_namespaces(
                client, pol, namespace or (), dry_run=dry_run, only_missing=only_missing,
                rate=rate, max_errors=max_errors, source_overrides=overrides, env=os.environ,
                on_progress=bar, should_stop=stop.is_set)
        except InterruptedWork as exc:
            if isinstance(exc.partial, WarmReport):
                show(exc.partial)
            raise
    show(report)
    return 0 if report.ok else 1
