"""cachectl model: what TTL and how much memory each namespace needs, from an access trace."""

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from cachectl.cli.options import JsonOpt, PolicyOpt, RedisOptions, load_cli_policy, redis_options
from cachectl.progress import ProgressCallback, no_progress

COMMAND_SETTINGS: dict[str, Any] = {}


# beyond these the simulation's 64-bit sums overflow, and no cache is that large
MAX_MEMORY_BYTES = 1 << 50  # 1 PiB
MAX_KEY_OVERHEAD_BYTES = 1 << 20  # Redis's own overhead per key is a few hundred bytes
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _list(flag: str, text: str | None, parse: Any, example: str,
          maximum: int | None = None) -> tuple[int, ...]:
    from cachectl.errors import UsageError
    from cachectl.policy.units import UnitError

    if not text:
        return ()
    out = []
    for part in text.split(","):
        try:
            value = parse(part.strip())
        except UnitError as exc:
            raise UsageError(f"{flag} {part.strip()!r}: {exc}", hint=f"e.g. {flag} {example}") from None
        if value <= 0:
            raise UsageError(f"{flag} {part.strip()!r} must be positive", hint=f"e.g. {flag} {example}")
        if maximum is not None and value > maximum:
            raise UsageError(f"{flag} {part.strip()!r} is above {maximum:,}", hint=f"e.g. {flag} {example}")
        out.append(value)
    return tuple(sorted(set(out)))


def _compression_ratios(path: Path) -> tuple[tuple[str, float, int], ...]:
    """The recommended ratios of an `inspect --compression --json` file (UsageError if not)."""
    import json

    from cachectl.compressibility import ratios_from_report
    from cachectl.errors import UsageError
    from cachectl.files import open_regular

    try:
        with open_regular(path) as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--compression {path}: {exc}",
                         hint="cachectl inspect --compression --json > compression.json") from None
    return ratios_from_report(doc)


@redis_options
def command(
    conn: RedisOptions,
    trace: Annotated[list[Path] | None, typer.Option(
        "--trace", "-t", metavar="FILE", help="An access trace: .csv (time,key,size[,namespace]), "
        ".jsonl, or libCacheSim oracleGeneral; .gz/.zst too (repeatable, in time order) "
        "[default: with --url, the trace the library captured there].")] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", metavar="NS", help="Every record belongs to this namespace "
        "(for traces of ids).")] = None,
    ttl: Annotated[str | None, typer.Option(
        "--ttl", metavar="LIST", help="TTLs to evaluate, e.g. 30s,5m,1h [default: 1s..7d log grid "
        "plus each namespace's TTL].")] = None,
    memory: Annotated[str | None, typer.Option(
        "--memory", metavar="LIST", help="maxmemory sizes to evaluate, e.g. 256MiB,1GiB.")] = None,
    exact: Annotated[bool, typer.Option(
        "--exact", help="Simulate every event (no sampling, however long the trace).")] = False,
    sample: Annotated[str | None, typer.Option(
        "--sample", metavar="RATE", help="Share of keys to simulate, e.g. 1% [default: all up to "
        "2M events, else ~1M events' worth, at least 1%].")] = None,
    key_overhead: Annotated[int | None, typer.Option(
        "--key-overhead", metavar="BYTES", help="Memory per key beyond its value [default: measured "
        "on --url's live keys when given, else 225, used_memory per key on Redis 7.0.15].")] = None,
    lfu: Annotated[bool, typer.Option(
        "--lfu", help="Also simulate allkeys-lfu (lfu-log-factor 10, lfu-decay-time 1).")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", metavar="FILE.png", help="Draw the curves into a PNG (the 'plot' extra).")] = None,
    compression: Annotated[Path | None, typer.Option(
        "--compression", metavar="FILE.json", help="Model values at their compressed size: the "
        "JSON of `cachectl inspect --compression --json` (its recommended namespaces).")] = None,
    json_out: JsonOpt = False,
    policy: PolicyOpt = None,
) -> int:
    """Model hit rate, origin load and memory per namespace at each TTL and each maxmemory.

    Reads an access trace, simulates a cache-aside cache with the policy's stale window and
    jitter at a grid of TTLs, and the whole policy in one Redis at a grid of sizes (exact LRU
    in one pass, and Redis's sampled LRU), then recommends per namespace the smallest TTL that
    meets its hit-rate threshold and the maxmemory that holds it. Exit 1 when a namespace's
    threshold is out of reach at every TTL.

    With --url, the memory a key costs beyond its value is measured on that server's keys, and
    without --trace the trace is the one the library captured there (the policy's trace:
    section), scaled by the rate it was sampled at; the output says how many events the
    library dropped from it (a trace with drops under-represents the load).

    Example: cachectl model --trace access.csv.gz --memory 256MiB,1GiB
    """
    from cachectl import model as core
    from cachectl.errors import UsageError, install_extra_hint
    from cachectl.policy.units import parse_duration_ms, parse_ratio, parse_size_bytes
    from cachectl.render import console

    pol = load_cli_policy(policy)
    ttls = _list("--ttl", ttl, parse_duration_ms, "30s,5m,1h")
    sizes = _list("--memory", memory, parse_size_bytes, "256MiB,1GiB", MAX_MEMORY_BYTES)
    rate = None
    if sample is not None:
        if exact:
            raise UsageError("--sample and --exact exclude each other")
        try:
            rate = parse_ratio(sample)
        except ValueError as exc:
            raise UsageError(f"--sample {sample!r}: {exc}", hint="e.g. --sample 1%") from None
        if not 0 < rate <= 1:
            raise UsageError(f"--sample {sample} is not in (0, 100%]", hint="e.g. --sample 1%")
    if key_overhead is not None and not 0 <= key_overhead <= MAX_KEY_OVERHEAD_BYTES:
        raise UsageError(f"--key-overhead must be between 0 and {MAX_KEY_OVERHEAD_BYTES:,} bytes")
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {plot}: the file name must end in " + ", ".join(PLOT_SUFFIXES),
                         hint="e.g. --plot curves.png")
    overhead_source = ("--key-overhead" if key_overhead is not None
                       else core.ModelOptions().key_overhead_source)
    if key_overhead is None and conn.url is not None:
        key_overhead, overhead_source = _measured_overhead(conn, pol) or (None, overhead_source)
    options = core.ModelOptions(
        ttls_s=tuple(ms / 1000 for ms in ttls), memory_bytes=sizes, exact=exact, sample_rate=rate,
        key_overhead=core.DEFAULT_KEY_OVERHEAD if key_overhead is None else key_overhead,
        key_overhead_source=overhead_source, lfu=lfu,
        compression=_compression_ratios(compression) if compression is not None else ())

    def progress_bars() -> AbstractContextManager[ProgressCallback]:
        if not console.is_terminal():
            return nullcontext(no_progress)
        from cachectl.render.progress import progress_bars as bars

        return bars(unit="steps", enabled=True)

    dropped: dict[str, int] | None = None  # a captured trace's events the library dropped
    with progress_bars() as bar, _stop_between_steps() as stop:
        def step(task: str, done: int, total: int | None = None) -> None:
            if stop.is_set():
                raise KeyboardInterrupt  # here, in Python between two compiled loops
            bar(task, done, total)

        if trace:
            data = core.read_traces(trace, pol, namespace=namespace,
                                    # every key's text: the hot keys are counted over every
                                    # event, sampled or not
                                    keep_key=lambda h: True,
                                    on_progress=lambda task, done: step(task, done))
        elif conn.url is not None:
            data, dropped = _captured_trace(conn, pol, lambda task, done: step(task, done))
        else:
            raise UsageError("no trace given", hint="--trace FILE (repeatable), or --url URL to "
                             "read the trace the library captured (the policy's trace: section)")
        report = core.model_trace(data, pol, options, on_progress=step)
        if stop.is_set():
            raise KeyboardInterrupt
    if dropped is not None:
        from cachectl.model.stream import with_dropped

        report = with_dropped(report, dropped)
    from cachectl.render import model as render

    if plot is not None:
        try:
            render.plot_report(report, plot)
        except ModuleNotFoundError:
            raise UsageError("--plot needs matplotlib", hint=install_extra_hint("plot")) from None
        except OSError as exc:
            raise UsageError(f"--plot {plot}: cannot write: {exc.strerror or exc}") from None
    if json_out:
        console.emit_json(report)
    else:
        render.render_report(report, console.stdout())
    return 0 if report.meets_thresholds else 1


def _captured_trace(conn: RedisOptions, policy: Any, on_progress: Any) -> tuple[Any, dict[str, int]]:
    """The trace the library captured, and its events it dropped per namespace since the first."""
    from contextlib import closing

    from cachectl.connection import redis_errors
    from cachectl.model.stream import dropped_events, read_stream_trace

    settings = conn.settings(policy)
    client = conn.connect(policy)
    with closing(client), redis_errors(settings):
        data = read_stream_trace(client, policy, on_progress=on_progress)
        return data, dropped_events(client, policy, float(data.time_s[0]))


@contextmanager
def _stop_between_steps() -> Iterator[threading.Event]:
    """Ctrl-C or SIGTERM sets the event instead of raising: an exception raised by a signal
    handler while numba's dispatcher is in C crashed the process (SystemError, or a
    segmentation fault). The progress callback raises KeyboardInterrupt at the next step."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if not stop.is_set():
            sys.stderr.write("\nstopping after the step in flight\n")
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _measured_overhead(conn: RedisOptions, policy: Any) -> tuple[int, str] | None:
    from contextlib import closing

    from cachectl.connection import redis_errors
    from cachectl.model.overhead import measure_key_overhead

    settings = conn.settings(policy)
    client = conn.connect(policy)
    with closing(client), redis_errors(settings):
        return measure_key_overhead(client, policy)
