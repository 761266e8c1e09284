"""cachectl bench: read latency per namespace and mode, against the policy's thresholds."""

# no `from __future__ import annotations`: @redis_options hands Typer the signature as is


import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cachectl.cli.options import JsonOpt, NamespaceOpt, PolicyOpt, RedisOptions, redis_options

if TYPE_CHECKING:
    from cachectl.bench import BenchResult

MODES = ("cached", "hot", "mixed")


@redis_options
def command(
    conn: RedisOptions,
    namespace: NamespaceOpt = None,
    mode: Annotated[list[str] | None, typer.Option(
        "--mode", "-m", help="cached (every key), hot (a small working set) or mixed "
        "(reads and policy-TTL writes); repeatable [default: cached].")] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", "-d", help="Measure this long per run, e.g. 30s [default: 10s].")] = None,
    requests: Annotated[int | None, typer.Option(
        "--requests", help="Measure this many requests per run instead of a duration.")] = None,
    warmup: Annotated[str, typer.Option(
        "--warmup", help="Warm-up per run, not counted.")] = "1s",
    clients: Annotated[int, typer.Option(
        "--clients", "-c", help="Concurrent connections.")] = 1,
    pipeline: Annotated[int, typer.Option(
        "--pipeline", "-P", help="Requests per round trip (latency is the round trip).")] = 1,
    read_ratio: Annotated[str, typer.Option(
        "--read-ratio", help="Share of reads in mixed mode: 0.9 or 90%.")] = "0.9",
    distribution: Annotated[str, typer.Option(
        "--distribution", help="Key popularity: uniform or zipf:S.")] = "uniform",
    value_size: Annotated[str, typer.Option(
        "--value-size", help="Value size of benchmark keys (512B, 4KiB), or 'sampled' from "
        "real keys of the namespace.")] = "sampled",
    keys: Annotated[int, typer.Option(
        "--keys", help="Keys per namespace (benchmark keys, or sampled with --existing).")]
    = 10_000,
    origin: Annotated[bool, typer.Option(
        "--origin", help="Also time loading the same rows from the warm source.")] = False,
    existing: Annotated[bool, typer.Option(
        "--existing", help="Read a sample of the real keyspace (reads only, writes nothing).")]
    = False,
    keep: Annotated[bool, typer.Option(
        "--keep", help="Leave the benchmark keys (they still expire by their TTL).")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Draw the percentile curves to FILE.png, .svg, .pdf or .html "
        "(needs the plot extra).")] = None,
    processes: Annotated[bool, typer.Option(
        "--processes", help="One process per client instead of threads (slower to start; "
        "no GIL sharing between clients).")] = False,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed for key choice and TTL jitter (repeatable runs).")] = None,
    policy: PolicyOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Benchmark read latency per namespace against the policy's p99 thresholds.

    Keys are generated under <key_prefix>:cachectl:bench:<namespace>: with a TTL and
    removed afterwards (unless --keep); --existing reads real keys instead, and writes
    nothing. Exit 1 when a run misses its threshold or has errors.

    Example: cachectl bench -n product -n price --mode hot --mode cached --duration 30s
    """
    from cachectl.bench import BenchConfig, BenchMode, BenchResult, Distribution, endpoint_of, run_bench
    from cachectl.cli.options import load_cli_policy
    from cachectl.connection import redis_errors
    from cachectl.errors import InterruptedWork, UsageError
    from cachectl.policy import units
    from cachectl.render import console
    from cachectl.render.bench import check_plot_target, live_progress, write_plot

    if duration is not None and requests is not None:
        raise UsageError("--duration and --requests exclude each other",
                         hint="measure for a time (--duration 30s) or a count (--requests 10000)")
    modes = []
    for m in mode or ["cached"]:
        if m not in MODES:
            raise UsageError(f"--mode {m!r} is not one of {', '.join(MODES)}")
        modes.append(BenchMode(m))
    try:
        duration_ms = units.parse_duration_ms(duration) if duration is not None else 10_000
        warmup_ms = units.parse_duration_ms(warmup)
        ratio = units.parse_ratio(read_ratio)
        size = None if value_size == "sampled" else units.parse_size_bytes(value_size)
    except units.UnitError as exc:
        raise UsageError(str(exc)) from None
    if plot is not None:
        check_plot_target(plot)
    config = BenchConfig(
        namespaces=tuple(namespace or ()), modes=tuple(dict.fromkeys(modes)),
        duration_ms=None if requests is not None else duration_ms, requests=requests,
        warmup_ms=warmup_ms, clients=clients, pipeline=pipeline, read_ratio=ratio,
        distribution=Distribution.parse(distribution), value_size=size, keys=keys,
        origin=origin, existing=existing, keep=keep,
        parallel="processes" if processes else "threads", seed=seed, source_env=os.environ)
    config.validate()
    pol = load_cli_policy(policy)
    for name in config.namespaces:
        pol.namespace(name)  # an unknown namespace fails before connecting
    settings = conn.settings(pol)
    client = conn.connect(pol)
    endpoint = endpoint_of(client, url=settings.url, tls_ca=settings.tls_ca,
                           tls_cert=settings.tls_cert, tls_key=settings.tls_key,
                           tls_insecure=settings.tls_insecure, timeout_s=settings.timeout_s,
                           use_tls=settings.tls)
    try:
        with redis_errors(settings), live_progress() as on_progress:
            result = run_bench(client, endpoint, pol, config, server=settings.display,
                               on_progress=on_progress)
    except InterruptedWork as exc:
        # the runs that finished before Ctrl-C are worth seeing; then exit 130
        if isinstance(exc.partial, BenchResult) and exc.partial.runs:
            _show(exc.partial, json_out)
        raise
    _show(result, json_out)
    if plot is not None:
        write_plot(result, plot)
        console.stderr().print(f"wrote {plot}", markup=False, highlight=False, soft_wrap=True)
    return 0 if result.passed else 1


def _show(result: "BenchResult", json_out: bool) -> None:
    from cachectl.render import console
    from cachectl.render.bench import bench_json, render_result

    if json_out:
        console.emit_json(bench_json(result))
    else:
        render_result(result, console.stdout())
