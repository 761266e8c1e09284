"""cachectl stats: hit rate, memory and latency against the policy's thresholds.

No ``from __future__ import annotations`` here: ``@redis_options`` rebuilds the
signature, and Typer must see real ``Annotated`` objects, not strings.
"""

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cachectl.cli.options import JsonOpt, NamespaceOpt, PolicyOpt, RedisOptions, redis_options

if TYPE_CHECKING:
    from cachectl.policy import Policy
    from cachectl.stats import StatsOptions, StatsReport

FORMATS = ("text", "json", "prometheus")


def _seconds(flag: str, text: str) -> float:
    from cachectl.errors import UsageError
    from cachectl.policy.units import UnitError, parse_duration_ms

    try:
        ms = float(text) * 1000  # a bare number is seconds, decimals included
    except ValueError:
        try:
            ms = parse_duration_ms(text)
        except UnitError as exc:
            raise UsageError(f"{flag} {text!r}: {exc}") from None
    if ms != ms or ms == float("inf"):
        raise UsageError(f"{flag} {text!r} is not a duration", hint=f"e.g. {flag} 5s")
    if ms <= 0:
        raise UsageError(f"{flag} must be positive", hint=f"e.g. {flag} 5s")
    return ms / 1000


@redis_options
def command(
    conn: RedisOptions,
    policy: PolicyOpt = None,
    interval: Annotated[str, typer.Option(
        "--interval", "-i", help="Time between the two INFO snapshots (5s, 500ms, 1m).")] = "5s",
    window: Annotated[str, typer.Option(
        "--window", "-w", help="Window of the library's counters (15m, 1h, 1d).")] = "15m",
    namespace: NamespaceOpt = None,
    no_scan: Annotated[bool, typer.Option(
        "--no-scan", help="Skip the sampled key scan (per-namespace key counts and memory).")]
    = False,
    sample_keys: Annotated[int, typer.Option(
        "--sample-keys", help="Keys the sampled scan reads per primary; a smaller server is "
        "scanned whole.")] = 10_000,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Refresh live until Ctrl-C; --watch SECONDS sets the period "
        "[default: the interval].")] = False,
    watch_seconds: Annotated[str | None, typer.Argument(
        hidden=True, metavar="SECONDS", show_default=False)] = None,
    json_out: JsonOpt = False,
    output_format: Annotated[str | None, typer.Option(
        "--format", "-f", help="text (default), json, or prometheus (text exposition).")] = None,
    serve: Annotated[str | None, typer.Option(
        "--serve", metavar="[HOST]:PORT",
        help="Serve Prometheus metrics at http://HOST:PORT/metrics until Ctrl-C (:9877 is "
        "loopback; 0.0.0.0:9877 every address).")]
    = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 on warnings too, not only on failures.")] = False,
) -> int:
    """Report hit rate, memory and latency against the policy's thresholds.

    Server figures come from two INFO snapshots --interval apart on every primary;
    per-namespace figures from the library's counters over --window and a sampled
    key scan. Exit 1 if a threshold fails (or warns, with --strict).

    Example: cachectl stats -p policies/ecommerce.yaml --interval 5s --window 15m
    """
    from cachectl.cli.options import load_cli_policy
    from cachectl.errors import UsageError

    # `--watch 5`: Typer has no optional option values, so SECONDS arrives as a hidden argument
    if watch_seconds is not None and not watch:
        raise UsageError(f"unexpected argument {watch_seconds!r}",
                         hint="the only argument is --watch's period, e.g. --watch 5")
    fmt = _output_format(json_out, output_format)
    if serve is not None and (watch or fmt != "text"):
        raise UsageError("--serve always serves Prometheus text; drop --watch/--json/--format")
    if watch and fmt == "prometheus":
        raise UsageError("--watch with --format prometheus is not supported",
                         hint="use --serve :9877 and let Prometheus scrape, or run it from cron")
    loaded = load_cli_policy(policy)
    from cachectl.stats import StatsOptions

    options = StatsOptions(
        interval_s=_seconds("--interval", interval),
        window_s=round(_seconds("--window", window)),
        namespaces=tuple(namespace or ()),
        scan=not no_scan,
        sample_keys=sample_keys,
    )
    options.validate(loaded)
    if serve is not None:
        return _serve(conn, loaded, options, serve)
    if watch:
        period = _seconds("--watch", watch_seconds) if watch_seconds else options.interval_s
        return _watch(conn, loaded, options, period, fmt)
    return _once(conn, loaded, options, fmt, strict)


def _output_format(json_out: bool, output_format: str | None) -> str:
    from cachectl.errors import UsageError

    if output_format is not None and output_format not in FORMATS:
        raise UsageError(f"--format {output_format!r} is not one of {', '.join(FORMATS)}")
    if json_out and output_format not in (None, "json"):
        raise UsageError(f"--json and --format {output_format} contradict each other")
    return "json" if json_out else (output_format or "text")


def _sampler(conn: RedisOptions, policy: "Policy", options: "StatsOptions",
             ping: bool = True) -> tuple[Any, Any]:
    """A StatsSampler and the settings; with ``ping``, RedisUnavailableError (exit 3) if down."""
    from cachectl.connection import connect, create_client, redis_errors
    from cachectl.stats import StatsSampler

    settings = conn.settings(policy)
    if ping:
        client = connect(settings)
    else:
        with redis_errors(settings):
            client = create_client(settings)
    return StatsSampler(client, policy, options, target=settings.display), settings


def _emit(report: "StatsReport", fmt: str) -> None:
    if fmt == "json":
        # json.dumps, not console.emit_json: a cron job or scraper should not pay for
        # importing Rich (the shape is the same: StatsReport.to_json)
        sys.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    elif fmt == "prometheus":
        from cachectl.render.prometheus import prometheus_text

        typer.echo(prometheus_text(report), nl=False)
    else:
        from cachectl.render.stats import print_dashboard

        print_dashboard(report)


def _once(conn: RedisOptions, policy: "Policy", options: "StatsOptions", fmt: str, strict: bool) -> int:
    from cachectl.connection import redis_errors

    sampler, settings = _sampler(conn, policy, options)
    with redis_errors(settings):
        if sys.stderr.isatty():
            from cachectl.render import console

            with console.stderr().status(f"sampling for {options.interval_s:g}s…"):
                report = sampler.report(keep_baseline=False)
        else:
            report = sampler.report(keep_baseline=False)
    if fmt == "json":
        from cachectl.stats.recommend import with_model_hints

        report = with_model_hints(sampler.client, policy, report)
    _emit(report, fmt)
    if fmt == "text":
        _print_trace_recommendations(sampler.client, policy, report)
    return 1 if report.failed(strict) else 0


def _print_trace_recommendations(client: Any, policy: "Policy", report: "StatsReport") -> None:
    """Under a failing hit-rate verdict: the model of the library's captured trace, if any."""
    from cachectl.stats.recommend import failing_hit_rates, hint_line, model_hints

    failing = failing_hit_rates(report)
    hints = model_hints(client, policy, failing)
    for name in failing:
        if name in hints:
            typer.echo(f"  hint: {hint_line(name, hints[name])}")


def _watch(conn: RedisOptions, policy: "Policy", options: "StatsOptions", period: float, fmt: str) -> int:
    """Refresh until Ctrl-C (exit 0); each refresh measures from the previous one."""
    import time

    from cachectl.connection import redis_errors
    from cachectl.render import console

    sampler, settings = _sampler(conn, policy, options)
    try:
        if fmt == "json":
            while True:
                with redis_errors(settings):
                    report = sampler.report()
                sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False,
                                            separators=(",", ":")) + "\n")
                sys.stdout.flush()  # one line per refresh, for `| jq` and friends
                time.sleep(period)
        from rich.live import Live

        from cachectl.render.stats import print_dashboard, stats_dashboard

        out = console.stdout()
        if not out.is_terminal:
            while True:
                with redis_errors(settings):
                    report = sampler.report()
                print_dashboard(report)
                time.sleep(period)
        with console.stderr().status(f"sampling for {options.interval_s:g}s…"), \
                redis_errors(settings):
            first = sampler.report()
        # the alternate screen, like top(1): a dashboard taller than the terminal is cropped
        with Live(stats_dashboard(first, out.width), console=out, auto_refresh=False,
                  screen=True, vertical_overflow="crop") as live:
            while True:
                time.sleep(period)
                with redis_errors(settings):
                    report = sampler.report()
                live.update(stats_dashboard(report, out.width), refresh=True)
    except KeyboardInterrupt:
        return 0


def _stop_on_sigterm() -> None:
    """Let SIGTERM (systemd, docker stop) end --serve as cleanly as Ctrl-C does."""
    import signal
    import threading

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _serve(conn: RedisOptions, policy: "Policy", options: "StatsOptions", address: str) -> int:
    """Serve /metrics until Ctrl-C (exit 0); Redis down -> ``cachectl_up 0``, not a crash."""
    from cachectl.render import console
    from cachectl.render.prometheus import prometheus_text, unavailable_text
    from cachectl.stats.exporter import MetricsServer, parse_address
    from cachectl.stats.scrape import Scraper

    host, port = parse_address(address)
    # an exporter starts even while Redis is down, and reports cachectl_up 0 until it is back
    sampler, settings = _sampler(conn, policy, options, ping=False)
    scraper = Scraper(sampler, settings, prometheus_text, unavailable_text)
    err = console.stderr()

    def scrape() -> bytes:
        result = scraper.scrape()
        if result.failure:
            err.print(f"scrape failed: {result.failure}", markup=False, highlight=False)
        return result.body

    server = MetricsServer((host, port), scrape, timeout_body=unavailable_text("timeout").encode())
    _stop_on_sigterm()
    failure = scraper.prime()  # the first scrape then measures from now instead of waiting --interval
    if failure:  # keep serving: scrapes say cachectl_up 0 until Redis is back
        err.print(f"warning: {failure}", markup=False, highlight=False)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"serving http://{shown}:{server.port}/metrics for {settings.display}; Ctrl-C stops",
              markup=False, highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        err.print("stopped", markup=False, highlight=False)
    return 0
