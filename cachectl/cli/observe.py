"""cachectl observe: Prometheus rules and a Grafana dashboard, generated from the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cachectl.cli.options import JsonOpt, PolicyOpt


def _duration_ms(flag: str, text: str) -> int:
    from cachectl.errors import UsageError
    from cachectl.policy.units import UnitError, parse_duration_ms

    try:
        ms = parse_duration_ms(text)
    except UnitError as exc:
        raise UsageError(f"{flag} {text!r}: {exc}", hint=f"e.g. {flag} 5m") from None
    if not 1000 <= ms <= 7 * 86_400_000 or ms != int(ms):
        raise UsageError(f"{flag} must be between 1s and 7d", hint=f"e.g. {flag} 5m")
    return int(ms)


def command(
    policy: PolicyOpt = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="DIR", help="Folder the files are written to (created).")]
    = Path("observe"),
    check: Annotated[bool, typer.Option(
        "--check", help="Write nothing; exit 1 if a file in --out is missing or not what the "
        "policy generates (for CI).")] = False,
    job: Annotated[str, typer.Option(
        "--job", help="The scrape job of cachectl stats --serve in Prometheus.")] = "cachectl",
    window: Annotated[str, typer.Option(
        "--window", "-w", help="The rate window of the ratios (at least 4 scrape intervals).")]
    = "5m",
    for_: Annotated[str, typer.Option(
        "--for", help="How long a condition holds before its alert fires.")] = "5m",
    name: Annotated[str | None, typer.Option(
        "--name", help="Names the files, the rule group and the PrometheusRule "
        "[default: the policy's key_prefix].")] = None,
    json_out: JsonOpt = False,
) -> int:
    """Generate Prometheus rules (plain and as a PrometheusRule) and a Grafana dashboard.

    Writes NAME.rules.yml, NAME.prometheusrule.yaml and NAME.dashboard.json into --out,
    the same bytes for the same policy and options; --check exits 1 when they are stale.

    Example: cachectl observe -p policies/ecommerce.yaml --out monitoring/ --check
    """
    from cachectl.cli.options import load_cli_policy, policy_path
    from cachectl.observe import ObserveOptions, generate, write
    from cachectl.observe import check as check_files
    from cachectl.observe.rules import RuleOptions
    from cachectl.render import console

    loaded = load_cli_policy(policy)
    rules = RuleOptions(job=job, window_ms=_duration_ms("--window", window),
                        for_ms=_duration_ms("--for", for_), policy_file=policy_path(policy).name)
    files = generate(loaded, ObserveOptions(name=name, rules=rules))
    statuses = check_files(files, out) if check else write(files, out)
    stale = [s for s in statuses if s.status in ("stale", "missing")]
    if json_out:
        typer.echo(json.dumps({"check": check, "current": not stale,
                               "files": [{"path": s.path, "kind": s.kind, "status": s.status}
                                         for s in statuses]}, indent=2))
    else:
        err = console.stderr()
        for s in statuses:
            err.print(f"{s.status:>9}  {s.path}", markup=False, highlight=False)
        if stale:
            err.print(f"error: {len(stale)} file(s) not what the policy generates", markup=False,
                      highlight=False)
            err.print(f"hint: cachectl observe -p {policy_path(policy)} --out {out} "
                      "(with the same options) and commit the result", markup=False,
                      highlight=False)
    return 1 if stale else 0
