"""cachectl inspect: keys, one namespace, or the whole keyspace, against the policy."""

import gc
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Annotated, Any

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
from cachectl.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from cachectl.connection import ConnectionSettings
    from cachectl.pacing import RateLimiter
    from cachectl.policy.model import Policy

SUGGEST_SAMPLE_AFTER_S = 10.0  # an exact summary slower than this suggests --sample


def _key_bytes(text: str, hex_keys: bool) -> bytes:
    if not hex_keys:
        # argv holds undecodable bytes as surrogates; this restores them exactly
        return text.encode("utf-8", "surrogateescape")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"--hex: {text!r} is not hexadecimal", hint="e.g. 73686f703a01ff") from None


def progress_if_terminal() -> AbstractContextManager[ProgressCallback]:
    """Rich progress bars on a terminal; when piped, a no-op without importing them."""
    from cachectl.render import console

    if console.is_terminal():
        from cachectl.render.progress import progress_bars

        return progress_bars()
    return _silent()


@contextmanager
def _silent() -> Iterator[ProgressCallback]:
    yield no_progress


def exit_without_collecting() -> None:
    """Results are written: let the interpreter exit without one last garbage collection
    over every imported module's objects (tens of milliseconds for a short run)."""
    sys.stdout.flush()
    gc.freeze()


def _compression(client: Any, pol: "Policy", settings: "ConnectionSettings",
                 namespace: str | None, sample: int | None, limiter: "RateLimiter | None",
                 json_out: bool) -> int:
    """inspect --compression: estimate, then print the tables or the JSON document."""
    from cachectl.compressibility import DEFAULT_SAMPLE, estimate_compression
    from cachectl.render import console

    with progress_if_terminal() as progress:
        report = estimate_compression(
            client, pol, settings, sample=sample or DEFAULT_SAMPLE,
            namespaces=[namespace] if namespace else None, limiter=limiter,
            on_progress=progress)
    if json_out:
        console.emit_json(report)
    else:
        from cachectl.render.compression import compression_report
        from cachectl.render.inspect import print_wide

        print_wide(console.stdout(), compression_report(report))
    return 0


@redis_options
def command(
    conn: RedisOptions,
    keys: Annotated[list[str] | None, typer.Argument(
        metavar="[KEY]...", help="Keys to show in full (exactly as stored).",
        show_default=False)] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", metavar="NS", help="List the keys of this namespace.")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", metavar="N", help="With --namespace: at most N keys (0: all).")] = 100,
    sample: Annotated[int | None, typer.Option(
        "--sample", metavar="N", min=1,
        help="Summary: estimate from N measured keys (with a 95 % margin) instead of "
        "measuring every key.")] = None,
    compression: Annotated[bool, typer.Option(
        "--compression", help="What compressing each namespace's values would save and cost "
        "(per codec and level), from --sample values per namespace (default 1000).")] = False,
    hex_keys: Annotated[bool, typer.Option(
        "--hex", help="KEY arguments are hexadecimal bytes (for binary keys).")] = False,
    rate: ScanRateOpt = None,
    no_lua: NoLuaOpt = False,
    policy: PolicyOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Show what is in the cache, measured against the policy.

    With KEY arguments: one panel per key. With --namespace: its keys, one line each
    (JSON lines with --json). Without either: one row per namespace (keys, memory,
    TTL spread, fresh vs stale) and the keys matching no namespace, by pattern.

    With --compression: per namespace, what each codec and level would save (with a 95 %
    margin) and cost in CPU, and which to turn on (docs/compression.md).

    Example: cachectl inspect -p cachectl.yaml --sample 20000
    """
    if keys and namespace:
        raise UsageError("give KEY arguments or --namespace, not both")
    if compression and keys:
        raise UsageError("--compression estimates namespaces, not KEY arguments",
                         hint="narrow it with --namespace NS")
    if sample is not None and (keys or namespace) and not compression:
        raise UsageError("--sample applies to the summary only (no KEY, no --namespace)")
    if limit < 0:
        raise UsageError("--limit must be >= 0")
    pol = load_cli_policy(policy)
    if namespace is not None:
        pol.namespace(namespace)  # unknown namespace: exit 2 with a did-you-mean, before connecting
    settings = conn.settings(pol)
    client = conn.connect(pol)

    from cachectl.pacing import RateLimiter
    from cachectl.render import console

    limiter = RateLimiter(rate) if rate else None
    if compression:
        return _compression(client, pol, settings, namespace, sample, limiter, json_out)
    if keys:
        from cachectl.inspect import inspect_keys
        from cachectl.render.inspect import print_key_details

        details = inspect_keys(client, pol, [_key_bytes(k, hex_keys) for k in keys], settings)
        if json_out:
            console.emit_json(list(details))
        else:
            print_key_details(details, console.stdout())
        return 0 if all(d.exists for d in details) else 1
    if namespace is not None:
        from cachectl.inspect import list_namespace

        rows = []
        with progress_if_terminal() as progress:
            for detail in list_namespace(client, pol, namespace, settings, limit=limit or None,
                                         limiter=limiter, on_progress=progress):
                if json_out:
                    console.emit_json_line(detail)
                else:
                    rows.append(detail)
        if not json_out:
            from cachectl.render.inspect import listing_table, print_wide

            if rows:
                print_wide(console.stdout(), listing_table(rows))
            if console.is_terminal():
                console.stderr().print(f"{len(rows)} key(s) of {namespace}"
                                       + (f" (first {limit}; --limit 0 for all)"
                                          if limit and len(rows) >= limit else ""))
        return 0
    from cachectl.inspect import summarize

    with progress_if_terminal() as progress:
        summary = summarize(client, pol, settings, sample=sample, limiter=limiter,
                            on_progress=progress, use_lua=not no_lua)
    if json_out:
        console.emit_json(summary)
    else:
        from cachectl.render.inspect import print_wide, summary_tables

        print_wide(console.stdout(), summary_tables(summary))
    if sample is None and summary.elapsed_s >= SUGGEST_SAMPLE_AFTER_S and console.is_terminal():
        from cachectl.keyspace import SHARE_FACTOR

        console.stderr().print(
            f"hint: measuring every key took {summary.elapsed_s:.0f}s; --sample 20000 estimates "
            f"the same figures (each with its 95 % margin) from {20000 * SHARE_FACTOR:,} keys read")
    exit_without_collecting()
    return 0
