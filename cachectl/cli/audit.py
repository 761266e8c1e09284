"""cachectl audit: judge every key against the policy; exit 1 on any error finding."""

from typing import Annotated

import typer

from cachectl.cli.options import (
    JsonOpt,
    NoLuaOpt,
    PolicyOpt,
    RedisOptions,
    ScanRateOpt,
    load_cli_policy,
    redis_options,
)
from cachectl.errors import UsageError


@redis_options
def command(
    conn: RedisOptions,
    top: Annotated[int, typer.Option(
        "--top", metavar="N", help="Report the N biggest keys (0: none).")] = 10,
    examples: Annotated[int, typer.Option(
        "--examples", metavar="N", help="Example keys per finding.")] = 5,
    rate: ScanRateOpt = None,
    no_lua: NoLuaOpt = False,
    policy: PolicyOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Audit the live keyspace against the policy: keys without TTL, TTLs longer than the
    policy allows, values over max_value_bytes (errors: exit 1), keys matching no
    namespace (warning) and the biggest keys (info).

    Example: cachectl audit -p cachectl.yaml --json > audit.json
    """
    if top < 0 or examples < 0:
        raise UsageError("--top and --examples must be >= 0")
    pol = load_cli_policy(policy)
    settings = conn.settings(pol)
    client = conn.connect(pol)

    from cachectl.audit import audit_keyspace
    from cachectl.cli.inspect import exit_without_collecting, progress_if_terminal
    from cachectl.pacing import RateLimiter
    from cachectl.render import console

    with progress_if_terminal() as progress:
        report = audit_keyspace(client, pol, settings, top=top, examples=examples,
                                limiter=RateLimiter(rate) if rate else None,
                                on_progress=progress, use_lua=not no_lua)
    if json_out:
        from cachectl.render.audit import report_json

        console.emit_json(report_json(report))
    else:
        from cachectl.render.audit import report_text
        from cachectl.render.inspect import print_wide

        print_wide(console.stdout(), report_text(report))
    exit_without_collecting()
    return 0 if report.ok else 1
