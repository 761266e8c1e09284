"""Warm namespaces from their seed sources: validate each row, then SET it with the policy's TTL.

Redis side effects: ``SET key value PX ttl`` (``NX`` with only_missing) for every valid row;
never a key without a TTL. The TTL is ``freshness.write_ttl_ms``, so a warmed key is
indistinguishable from one the library loaded. Rerunning a warm (after a crash, SIGKILL,
Ctrl-C or a Redis restart) ends with the same keyspace a clean run gives: a row always
renders the same key and value, duplicates keep the first row, and SET replaces.

Raises SourceError (a source that cannot be opened or read), UsageError (a namespace
without a source), InterruptedWork (``should_stop`` became true: the batch in flight is
finished first; ``partial`` holds the report) and redis-py errors when Redis fails
(the CLI turns those into RedisUnavailableError).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from cachectl.errors import InterruptedWork, SourceError, UsageError
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Namespace, Policy
from cachectl.warm.bulk import bulk_reader
from cachectl.warm.codec import encode_value as encode_value  # re-exported
from cachectl.warm.loop import BATCH_SIZE, RowWarm, Stop, no_progress
from cachectl.warm.loop import WarmProgress as WarmProgress  # re-exported
from cachectl.warm.model import NamespaceWarm, Tally, WarmReport
from cachectl.warm.model import WarmTarget as WarmTarget  # re-exported
from cachectl.warm.sources import FILE_TYPES, ReadInterrupted, SourceContext, open_source
from cachectl.warm.writer import Writer, permission_error

_Writer = Writer  # the name the tests patch (core._Writer.route)
WINDOW = 8  # batches sent and not yet answered, per connection
STOP_POLL_S = 0.05  # how often the watchdog of a source with interrupt() asks should_stop


def open_targets(policy: Policy, namespaces: Iterable[str] = (), *,
                 source_overrides: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None) -> list[WarmTarget]:
    """Open the source of every namespace to warm (all of them before anything is written).

    ``namespaces`` empty: every namespace with a ``warm:`` source. ``source_overrides`` maps
    a namespace to a file that replaces its source's path (relative to the current folder;
    a .jsonl/.json/.csv name also switches the type).
    """
    overrides = dict(source_overrides or {})
    names = list(dict.fromkeys(namespaces))
    if names:
        chosen = [policy.namespace(n) for n in names]
        for ns in chosen:
            if ns.warm is None and ns.name not in overrides:
                with_source = [n.name for n in policy if n.warm is not None]
                raise UsageError(f"namespace {ns.name} has no warm source",
                                 hint=f"add warm: {{source: …}} to it in the policy; namespaces "
                                 f"with one: {', '.join(with_source) or '(none)'}")
    else:
        chosen = [ns for ns in policy if ns.warm is not None]
        if not chosen:
            raise UsageError("no namespace in the policy has a warm source",
                             hint="add warm: {source: {type: jsonl, path: seeds/x.jsonl}} "
                             "to a namespace")
    for name in overrides:
        policy.namespace(name)  # UsageError with did-you-mean for a typo
        if name not in {ns.name for ns in chosen}:
            raise UsageError(f"--source-override names namespace {name}, which is not warmed "
                             "in this run", hint=f"add --namespace {name}")
    context_env = dict(env or {})
    targets: list[WarmTarget] = []
    try:
        _open_each(policy, chosen, overrides, context_env, targets)
    except BaseException:
        close_targets(targets)
        raise
    return targets


def close_targets(targets: Iterable[WarmTarget]) -> None:
    """Close every source that can be closed (files); sources without ``close`` are left."""
    for target in targets:
        close = getattr(target.source, "close", None)
        if callable(close):
            close()


def _open_each(policy: Policy, chosen: list[Namespace], overrides: dict[str, str],
               context_env: dict[str, str], targets: list[WarmTarget]) -> None:
    for ns in chosen:
        if ns.warm is not None and ns.warm.encoding == "raw" and ns.warm.value is None:
            raise UsageError(f"namespace {ns.name}: warm encoding: raw needs value: FIELD",
                             hint="raw stores one field's text as is; name the field with value:")
        kind, options = _source_spec(ns, overrides.get(ns.name))
        context = SourceContext(ns.name, policy.base_dir, context_env)
        targets.append(WarmTarget(ns, open_source(kind, options, context)))


def _source_spec(ns: Namespace, override: str | None) -> tuple[str, dict[str, Any]]:
    if ns.warm is None:
        kind, options = "", {}
    else:
        kind, options = ns.warm.source.type, ns.warm.source.options
    if override is None:
        return kind, options
    suffix = override.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    if suffix in FILE_TYPES and suffix != kind:
        kept = {"json": ("items",), "csv": ("columns", "delimiter"), "jsonl": ()}[suffix]
        options = {k: v for k, v in options.items() if k in kept}
        kind = suffix
    elif kind not in FILE_TYPES:
        raise UsageError(f"--source-override {ns.name}={override}: cannot tell the file type",
                         hint="name a .jsonl, .json or .csv file (optionally .gz)")
    return kind, {**options, "path": str(Path(override).resolve())}


# --------------------------------------------------------------------------- warming


def warm_namespaces(
    client: Any,
    policy: Policy,
    namespaces: Iterable[str] = (),
    *,
    dry_run: bool = False,
    only_missing: bool = False,
    rate: float | None = None,
    max_errors: int | None = None,
    source_overrides: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    on_progress: WarmProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    rng: random.Random | None = None,
    batch_size: int = BATCH_SIZE,
    window: int = WINDOW,
) -> WarmReport:
    """Warm ``namespaces`` (all with a source when empty) into ``client``; see the module doc.

    ``client`` may be None for a dry run (rows are read and validated; nothing is written).
    ``max_errors``: stop once more rows than this were rejected or refused. ``rate``: at most
    this many keys per second.
    """
    if rate is not None and rate <= 0:
        raise UsageError(f"rate {rate:g} must be positive")
    if max_errors is not None and max_errors < 0:
        raise UsageError(f"max_errors {max_errors} must be 0 or more")
    if client is None and not dry_run:
        raise UsageError("a warm that writes needs a Redis client")
    targets = open_targets(policy, namespaces, source_overrides=source_overrides, env=env)
    progress = on_progress or no_progress
    stop_check = should_stop or (lambda: False)
    limiter = RateLimiter(rate)
    if rate:
        batch_size = max(1, min(batch_size, int(rate / 20) or 1))
    try:
        return _warm_targets(client, targets, dry_run=dry_run, only_missing=only_missing,
                             max_errors=max_errors, limiter=limiter, progress=progress,
                             should_stop=stop_check, rng=rng, batch_size=batch_size,
                             window=window)
    finally:
        close_targets(targets)


def _warm_targets(client: Any, targets: list[WarmTarget], *, dry_run: bool, only_missing: bool,
                  max_errors: int | None, limiter: RateLimiter, progress: WarmProgress,
                  should_stop: Callable[[], bool], rng: random.Random | None, batch_size: int,
                  window: int) -> WarmReport:
    results: list[NamespaceWarm] = []
    errors_so_far = 0
    stop_check = should_stop
    for target in targets:
        writer = None if dry_run else Writer(client, window=window, nx=only_missing)
        tally = Tally(target)
        started = time.monotonic()
        stopped: str | None = None
        interrupted = False
        try:
            try:
                _warm_one(tally, writer, only_missing=only_missing, batch_size=batch_size,
                          limiter=limiter, progress=progress, should_stop=stop_check,
                          error_budget=None if max_errors is None else max_errors - errors_so_far,
                          rng=rng)
            except Stop as stop:
                interrupted = stop.reason is None
                stopped = (f"more than {max_errors} rows rejected or refused (--max-errors)"
                           if stop.reason == "max-errors" else stop.reason)
            if writer is not None:
                writer.finish(tally)
                if writer.permission_denied:
                    raise permission_error(writer.permission_denied)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        seconds = time.monotonic() - started
        results.append(tally.result(seconds, complete=not (stopped or interrupted)))
        errors_so_far += tally.rejected + tally.failed
        if stopped is None and not interrupted and max_errors is not None \
                and errors_so_far > max_errors:
            stopped = f"more than {max_errors} rows rejected or refused (--max-errors)"
        if interrupted:
            report = WarmReport(tuple(results), dry_run, only_missing, interrupted=True)
            raise InterruptedWork(
                f"warm interrupted in namespace {target.namespace.name}", partial=report,
                hint="every key written is complete (with its TTL); rerun the same command "
                "to finish")
        if stopped:
            return WarmReport(tuple(results), dry_run, only_missing, stopped=stopped)
    return WarmReport(tuple(results), dry_run, only_missing)


def _warm_one(tally: Tally, writer: Writer | None, *, only_missing: bool, batch_size: int,
              limiter: RateLimiter, progress: WarmProgress, should_stop: Callable[[], bool],
              error_budget: int | None, rng: random.Random | None) -> None:
    """Read every row of one source and send it: whole chunks of rows at a time when the
    source is JSON lines or SQLite and the namespace plain (cachectl.warm.bulk), else row
    by row."""
    warm = RowWarm(tally, writer, only_missing=only_missing, batch_size=batch_size,
                   limiter=limiter, progress=progress, should_stop=should_stop,
                   error_budget=error_budget, rng=rng)
    bulk = bulk_reader(warm)
    source = warm.source
    with _interrupt_on_stop(source, should_stop) as interrupted:
        try:
            if bulk is not None:
                bulk(warm)
            else:
                encoded_rows = (getattr(source, "encoded_rows", None)
                                if warm.value_field is None else None)
                if callable(encoded_rows):
                    stream: Iterable[tuple[int, Any, bytes | None]] = encoded_rows()
                else:
                    stream = ((position, row, None) for position, row in source.rows())
                warm.rows(stream)
        except (ReadInterrupted, SourceError):
            # a read cancelled by interrupt() (a plugin may fail its own way once cancelled)
            if not interrupted.is_set():
                raise
            warm.finish()  # the rows read before the read was cancelled are complete
            raise Stop(None) from None
    warm.finish()


@contextmanager
def _interrupt_on_stop(source: Any, should_stop: Callable[[], bool]) -> Iterator[threading.Event]:
    """While ``source`` is read: a watchdog thread that calls its ``interrupt()`` once
    ``should_stop()`` is true, so a read blocked in a server (a query waiting on a lock, in
    ``pg_sleep``, a slow API) ends within a second of Ctrl-C or SIGTERM, not when its timeout
    does. Yields an event set once ``interrupt()`` was called. Sources without ``interrupt``
    are only checked between batches, as every source is (``RowWarm.flush``)."""
    fired = threading.Event()
    interrupt = getattr(source, "interrupt", None)
    if not callable(interrupt):
        yield fired
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_S):
            if should_stop():
                fired.set()
                with suppress(Exception):  # best effort: the batch check stops the run anyway
                    interrupt()
                return

    thread = threading.Thread(target=watch, name="cachectl-warm-stop", daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        done.set()
        thread.join(timeout=2.0)  # a daemon: an interrupt() that hangs cannot hold the exit
