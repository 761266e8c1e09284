"""cachectl demo: the whole mission, end to end, against a server it starts itself."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.table import Table

    from cachectl.demo import NamespaceTraffic, WorkloadResult

COMMAND_SETTINGS = {"no_args_is_help": False}


@dataclass
class _Step:
    title: str
    code: int
    expected: tuple[int, ...] = (0,)

    @property
    def ok(self) -> bool:
        return self.code in self.expected


def command(
    url: Annotated[str | None, typer.Option(
        "--url", metavar="URL",
        help="Run against this server (it gets keys under shop:). Default: REDIS_URL, "
        "else a throwaway redis-server, else an embedded one.")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="About 10 seconds instead of about a minute (for CI and the README).")]
    = False,
    embedded: Annotated[bool, typer.Option(
        "--embedded", help="Use the embedded in-process server even if redis-server exists.")]
    = False,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Narrate on stderr; print one JSON summary (the steps and their exit "
        "codes) on stdout.")] = False,
) -> int:
    """Run the whole cachectl story on a real server: lint, warm, shop, stats, bench, flush, audit.

    Uses --url or REDIS_URL when given; otherwise starts a throwaway redis-server
    (or an embedded server) and stops it at the end. Exit 0 when every step
    behaved as the policy's thresholds demand.

    Example: cachectl demo --quick
    """
    from cachectl.demo import DEMO_POLICY, demo_server
    from cachectl.render import console

    err = console.stderr()
    out = console.stdout()
    target = url or os.environ.get("REDIS_URL")
    steps: list[_Step] = []
    summary_to = sys.stdout
    # with --json every step's own output (Rich and typer.echo both look up sys.stdout
    # when they print) goes to stderr, and stdout carries the summary document alone
    narrate = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    with narrate, demo_server(target, embedded=embedded) as server:
        out.print(f"[bold]cachectl demo[/bold]: {server.description}")
        policy = _relative(DEMO_POLICY)
        common = ["--policy", policy, "--url", server.url]
        workload_s = 3.0 if quick else 40.0
        bench_s = "1s" if quick else "5s"

        def run(title: str, args: list[str], expected: tuple[int, ...] = (0,)) -> int:
            from cachectl.cli import run as run_cli

            out.print()
            out.rule(f"[bold]{title}[/bold]", align="left")
            out.print(f"[dim]$ cachectl {' '.join(_shown(args, server.url))}[/dim]")
            out.file.flush()
            code = run_cli(args)
            steps.append(_Step(title, code, expected))
            return code

        run("1. Lint the policy (the CI gate)", ["lint", policy])
        run("2. Warm the catalogue from examples/seeds", ["warm", *common])
        out.print()
        out.rule("[bold]3. Shoppers browse the shop through cachectl.Cache[/bold]", align="left")
        result = _shop(server.url, workload_s, live=console.is_terminal(out.file))
        steps.append(_Step("3. Shopper workload", 0 if result.errors == 0 else 1))
        # shoppers keep shopping while stats samples the server, so the interval sees traffic
        background = threading.Thread(
            target=_shop, args=(server.url, 4.0), kwargs={"live": False, "show": False},
            name="demo-shoppers", daemon=True)
        background.start()
        run("4. Stats: hit rate, memory and latency against the thresholds (shoppers still busy)",
            ["stats", *common, "--interval", "2s", "--window", "15m"], expected=(0,))
        background.join()
        run("5. Bench: hot and cached reads as the application sees them",
            ["bench", *common, "--mode", "hot", "--mode", "cached", "--namespace", "product",
             "--duration", bench_s, "--clients", "2"])
        run("6. Soft-flush price: every price goes stale, revalidated one caller at a time",
            ["flush", *common, "--namespace", "price", "--soft", "--yes"])
        swr = _shop(server.url, 2.0 if quick else 10.0, live=False, namespaces=("price",),
                    show=False)
        _show_swr(out, swr)
        steps.append(_Step("6b. Stale-while-revalidate", 0 if swr.errors == 0 else 1))
        run("7. Flush stock (removed: the next read loads fresh levels)",
            ["flush", *common, "--namespace", "stock", "--yes"])
        run("8. Audit the keyspace against the policy", ["audit", *common])
    failed = [s for s in steps if not s.ok]
    if json_out:
        from cachectl.render.console import emit_json

        emit_json({"server": {"kind": server.kind, "description": server.description},
                   "passed": not failed,
                   "steps": [{"title": s.title, "exit_code": s.code, "expected": list(s.expected),
                              "ok": s.ok} for s in steps]}, summary_to)
        return 1 if failed else 0
    out.print()
    out.rule("[bold]Summary[/bold]", align="left")
    for step in steps:
        mark = "[green]ok[/green]" if step.ok else f"[red]exit {step.code}[/red]"
        out.print(f"  {mark:<22} {step.title}")
    if failed:
        err.print(f"{len(failed)} step(s) did not behave as the thresholds demand")
        return 1
    return 0


def _relative(path: Path) -> str:
    """``policies/ecommerce.yaml`` when run from the checkout, else the installed file's path."""
    shown = Path("policies") / path.name
    try:
        if shown.samefile(path):  # the checkout's symlink to the packaged file
            return str(shown)
    except OSError:
        pass
    return str(path)


def _shown(args: list[str], url: str) -> list[str]:
    from cachectl.connection import redact_url

    return [redact_url(a) if a == url else a for a in args]


def _shop(url: str, seconds: float, *, live: bool, namespaces: tuple[str, ...] | None = None,
          show: bool = True) -> WorkloadResult:
    from rich.live import Live

    from cachectl.cache import Cache
    from cachectl.demo import DEMO_POLICY, load_catalogue, run_shoppers
    from cachectl.render import console

    out = console.stdout()
    catalogue = load_catalogue()
    # 50 ms per call, not the library's 10 ms default: the demo shares two cores with
    # the server and the shoppers, and a timeout there is a fallback, not a failure
    with Cache.from_policy(DEMO_POLICY, url=url, timeout_ms=50) as cache:
        if live and show:
            with Live(_traffic_table({}), console=out, refresh_per_second=4) as view:
                result = run_shoppers(cache, catalogue, seconds=seconds, namespaces=namespaces,
                                      on_tick=lambda snap: view.update(_traffic_table(snap)))
        else:
            result = run_shoppers(cache, catalogue, seconds=seconds, namespaces=namespaces)
    if show:
        if not live:
            out.print(_traffic_table(result.traffic))
        out.print(f"{result.requests:,} requests by {result.shoppers} shoppers in "
                  f"{result.seconds:.1f}s ({result.requests_per_s:,.0f}/s), "
                  f"{result.errors} errors")
    return result


def _traffic_table(snapshot: Mapping[str, NamespaceTraffic]) -> Table:
    from rich.table import Table

    table = Table(title="traffic per namespace (as the shoppers saw it)", title_justify="left")
    for col in ("namespace", "requests", "served from cache", "hit rate", "origin loads",
                "background reloads"):
        table.add_column(col, justify="left" if col == "namespace" else "right")
    for name, t in sorted(snapshot.items()):
        rate = f"{t.hit_rate:.1%}" if t.hit_rate is not None else "-"
        table.add_row(name, f"{t.requests:,}", f"{t.served_from_cache:,}", rate,
                      f"{t.loads_in_caller:,}", f"{t.loads_in_background:,}")
    return table


def _show_swr(out: object, result: WorkloadResult) -> None:
    from rich.console import Console

    assert isinstance(out, Console)
    price = result.traffic.get("price")
    if price is None:
        out.print("no price traffic")
        return
    time.sleep(0)  # background reloads may still be landing; the counts below are final
    out.print(
        f"after the soft flush: {price.requests:,} price reads, {price.served_from_cache:,} "
        f"answered at once from cache (stale or fresh), {price.loads_in_caller:,} loaded in the "
        f"caller, {price.loads_in_background:,} revalidated in the background "
        f"(at most one reload per key across every shopper)")
