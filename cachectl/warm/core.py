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
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis.exceptions as rex

from cachectl.errors import InterruptedWork, RedisUnavailableError, UsageError
from cachectl.freshness import ttl_bounds_ms, write_ttl_ms
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Namespace, Policy
from cachectl.policy.template import KeyParamError, KeyTemplate
from cachectl.policy.units import format_size_bytes
from cachectl.warm.codec import dumps as _dumps
from cachectl.warm.codec import encode_value as encode_value  # re-exported
from cachectl.warm.model import FIRST_PROBLEMS, SAMPLE_KEYS, NamespaceWarm, RowProblem, WarmReport
from cachectl.warm.pipe import SET_NX, SET_PX, Batch, Pipe
from cachectl.warm.sources import FILE_TYPES, BadRow, Source, SourceContext, open_source

BATCH_SIZE = 1000  # commands per write
BATCH_BYTES = 1 << 19  # …or this many bytes, whichever comes first
WINDOW = 8  # batches sent and not yet answered, per connection
PROGRESS_EVERY_S = 0.1


class WarmProgress(Protocol):
    def __call__(self, task: str, done: int, total: int | None = None, *,
                 payload_bytes: int = 0) -> None:
        """``done`` rows of namespace ``task`` read (of ``total`` if known), bytes written."""


def _no_progress(task: str, done: int, total: int | None = None, *, payload_bytes: int = 0) -> None:
    pass


@dataclass(frozen=True)
class WarmTarget:
    """A namespace and its opened source."""

    namespace: Namespace
    source: Source


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


# --------------------------------------------------------------------------- writing


class _Lane:
    """Commands bound for one connection (one node), batched."""

    __slots__ = ("keys", "parts", "pipe", "size", "tags", "values")

    def __init__(self, pipe: Pipe | None, keep_values: bool) -> None:
        self.pipe = pipe
        self.parts: list[bytes] = []
        self.tags: list[int] = []
        self.keys: list[bytes] = []
        self.values: list[bytes] | None = [] if keep_values else None
        self.size = 0

    def take(self) -> tuple[bytes, Batch]:
        batch = Batch(self.tags, self.keys, self.values or [], [])
        payload = b"".join(self.parts)
        self.parts, self.tags, self.keys = [], [], []
        self.values = [] if self.values is not None else None
        self.size = 0
        return payload, batch


@dataclass
class _Tally:
    """Mutable counters for one namespace while it is warmed."""

    target: WarmTarget
    rows: int = 0
    written: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0
    payload_bytes: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    ttls: dict[bytes, int] = field(default_factory=dict)  # batch-local, for redirected retries

    def problem(self, position: int, reason: str, category: str, key: str | None = None,
                kind: str = "rejected") -> None:
        if kind == "failed":
            self.failed += 1
        else:
            self.rejected += 1
        self.reasons[category] = self.reasons.get(category, 0) + 1
        if len(self.problems) < FIRST_PROBLEMS:
            self.problems.append(RowProblem(self.target.source.locate(position), reason, key, kind))

    def result(self, seconds: float, complete: bool) -> NamespaceWarm:
        ns = self.target.namespace
        return NamespaceWarm(
            namespace=ns.name, source=self.target.source.description, rows=self.rows,
            written=self.written, skipped=self.skipped, rejected=self.rejected,
            failed=self.failed, payload_bytes=self.payload_bytes, seconds=seconds,
            ttl_bounds_ms=ttl_bounds_ms(ns), problems=tuple(self.problems),
            sample_keys=tuple(self.samples), complete=complete,
            errors_by_reason=dict(sorted(self.reasons.items(), key=lambda kv: -kv[1])))


class _Stop(Exception):
    """Stop reading rows: interrupted, too many errors, or Redis out of memory."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason


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
    progress = on_progress or _no_progress
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
        writer = None if dry_run else _Writer(client, window=window, nx=only_missing)
        tally = _Tally(target)
        started = time.monotonic()
        stopped: str | None = None
        interrupted = False
        try:
            try:
                _warm_one(tally, writer, only_missing=only_missing, batch_size=batch_size,
                          limiter=limiter, progress=progress, should_stop=stop_check,
                          error_budget=None if max_errors is None else max_errors - errors_so_far,
                          rng=rng)
            except _Stop as stop:
                interrupted = stop.reason is None
                stopped = (f"more than {max_errors} rows rejected or refused (--max-errors)"
                           if stop.reason == "max-errors" else stop.reason)
            if writer is not None:
                writer.finish(tally)
                if writer.permission_denied:
                    raise _permission_error(writer.permission_denied)
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


def _permission_error(reply: str) -> RedisUnavailableError:
    """A NOPERM reply: every further write would be refused too, so stop with exit 3."""
    return RedisUnavailableError(
        f"permission denied: {reply}",
        hint="warm needs SET on the namespaces' keys; see README 'Least-privilege ACL'")


def ttl_sampler(ns: Namespace, rng: random.Random) -> Callable[[], int]:
    """``lambda: write_ttl_ms(ns, rng)``, with the namespace's figures bound once (hot loop).

    The same formula and the same draws from ``rng``; a unit test holds them equal.
    """
    ttl_ms, jitter, grace, draw = ns.ttl_ms, ns.jitter, ns.grace_ms, rng.random
    if not jitter:
        return lambda: write_ttl_ms(ns, rng)
    # random.uniform(a, b) is a + (b - a) * random(): the same arithmetic, one call fewer
    low, span = -jitter, jitter - -jitter

    def sample() -> int:
        return max(1, round(ttl_ms * (1 + (low + span * draw()))) + grace)

    return sample


def _key_renderer(template: KeyTemplate) -> Callable[[dict[str, Any]], str]:
    """``template.render``, with a fast path for the common case that gives the same key.

    Rows whose placeholder value is a non-empty str without ':' or a plain int are rendered
    here (``_fast_key``; the hot loop inlines the same test); every other row goes through
    ``template.render`` (and its errors).
    """
    render = template.render
    fast = _fast_key(template)
    if fast is None:
        return lambda row: render(row)
    name, head, tail = fast

    def one(row: dict[str, Any]) -> str:
        value = row.get(name)
        cls = value.__class__
        if cls is str:
            if value and ":" not in value:
                return head + value + tail  # type: ignore[no-any-return]
        elif cls is int:
            return head + str(value) + tail
        return render(row)

    return one


def _fast_key(template: KeyTemplate) -> tuple[str, str, str] | None:
    """(field, head, tail) when ``template`` has one placeholder without a modifier: a row
    whose field is a plain int, or a non-empty str without ':', renders as head+value+tail
    (``_key_renderer``'s fast path, inlined in the hot loop); None otherwise."""
    if len(template.placeholders) != 1 or any(seg.modifier is not None
                                              for seg in template.segments):
        return None
    pieces = [(seg.prefix, seg.placeholder, seg.suffix) for seg in template.segments]
    index = next(i for i, (_, ph, _) in enumerate(pieces) if ph is not None)
    head = ":".join(p[0] if p[1] is None else "" for p in pieces[:index])
    head = (head + ":" if index else "") + pieces[index][0]
    tail = pieces[index][2] + "".join(":" + p[0] for p in pieces[index + 1:])
    return template.placeholders[0], head, tail


def _warm_one(tally: _Tally, writer: _Writer | None, *, only_missing: bool, batch_size: int,
              limiter: RateLimiter, progress: WarmProgress, should_stop: Callable[[], bool],
              error_budget: int | None, rng: random.Random | None) -> None:
    """Read every row of one source and send it (the hot loop: keep it lean).

    Per row: one key (the template's single placeholder inlined when it can be), one value
    (the bytes a jsonl source already encoded, else compact JSON), one TTL draw, one RESP
    command appended to the lane's batch; everything else happens per batch.
    """
    target = tally.target
    ns = target.namespace
    source = target.source
    template = ns.template
    render_key = _key_renderer(template)
    fast_key = _fast_key(template)
    key_field, key_head, key_tail = fast_key if fast_key is not None else ("", "", "")
    placeholders = template.placeholders
    warm = ns.warm
    value_field = warm.value if warm is not None else None
    raw = warm is not None and warm.encoding == "raw"
    limit = ns.max_value_bytes
    fmt = SET_NX if only_missing else SET_PX
    seen: set[int] = set()
    seen_add = seen.add
    total = source.estimated_rows()
    dumps = _dumps
    ttl_rng = rng or random.Random()
    next_ttl = ttl_sampler(ns, ttl_rng)
    # ttl_sampler's arithmetic inlined (the same draws and rounding; a unit test holds the
    # written TTLs equal to write_ttl_ms's)
    jittered = bool(ns.jitter)
    ttl_ms, ttl_grace, draw = ns.ttl_ms, ns.grace_ms, ttl_rng.random
    ttl_low, ttl_span = -ns.jitter, ns.jitter - -ns.jitter
    name = ns.name
    samples = tally.samples
    n_samples = len(samples)
    lane: _Lane | None = None
    route = writer.route if writer is not None else None
    if writer is None:
        lane = _Lane(None, keep_values=False)
    elif not writer.cluster:
        lane = writer.lane_for(b"")
    last_progress = time.monotonic()
    budget = error_budget
    rows = 0
    payload = 0
    cluster_ttls = tally.ttls if writer is not None and writer.cluster else None
    encoded_rows = getattr(source, "encoded_rows", None) if value_field is None else None
    if callable(encoded_rows):
        stream: Iterable[tuple[int, Any, bytes | None]] = encoded_rows()
    else:
        stream = ((position, row, None) for position, row in source.rows())

    def reject(position: int, reason: str, category: str, key: str | None = None) -> None:
        tally.problem(position, reason, category, key)
        if budget is not None and tally.rejected + tally.failed > budget:
            tally.rows, tally.payload_bytes = rows, payload
            raise _Stop("max-errors")

    lane_count = lane_size = 0
    if lane is not None:
        parts_append, tags_append, keys_append = (
            lane.parts.append, lane.tags.append, lane.keys.append)
    for position, row, value in stream:
        rows += 1
        if row.__class__ is not dict:
            reject(position, row.reason if isinstance(row, BadRow) else "not a row",
                   "unreadable row")
            continue
        key_text = None
        if fast_key is not None:
            part = row.get(key_field)
            cls = part.__class__
            if cls is int:
                key_text = key_head + str(part) + key_tail
            elif cls is str and part and ":" not in part:
                key_text = key_head + part + key_tail
        if key_text is None:
            try:
                key_text = render_key(row)
            except KeyParamError as exc:
                missing = [p for p in placeholders if p not in row]
                if missing:
                    reject(position, f"no field {missing[0]!r} for key {template.source!r}",
                           "missing field")
                else:
                    reject(position, str(exc), "bad key value")
                continue
        try:
            key = key_text.encode("utf-8")
            if value is not None:
                pass  # the source encoded it already
            elif value_field is None:
                value = dumps(row).encode("utf-8")
            elif value_field not in row:
                reject(position, f"no field {value_field!r} (warm.value)", "missing field",
                       key_text)
                continue
            elif raw:
                value = _raw_value(row[value_field])
            else:
                value = dumps(row[value_field]).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            # UnicodeEncodeError (an unpaired surrogate) is a ValueError
            reject(position, f"value cannot be encoded: {exc}", "bad value", key_text)
            continue
        size = len(value)
        if limit is not None and size > limit:
            reject(position, f"value is {size:,} bytes, over max_value_bytes "
                   f"{format_size_bytes(limit)}", "too large", key_text)
            continue
        fingerprint = hash(key)
        if fingerprint in seen:
            reject(position, f"duplicate key {key_text} (an earlier row has it; the first is "
                   "kept)", "duplicate key", key_text)
            continue
        seen_add(fingerprint)
        if n_samples < SAMPLE_KEYS:
            samples.append(key_text)
            n_samples += 1
        if jittered:
            ttl = round(ttl_ms * (1 + (ttl_low + ttl_span * draw()))) + ttl_grace
            ttl_b = b"%d" % (ttl if ttl > 1 else 1)
        else:
            ttl_b = b"%d" % next_ttl()
        payload += len(key) + size
        if lane is not None:  # one connection: its lists bound to locals, counted here
            parts_append(fmt % (len(key), key, size, value, len(ttl_b), ttl_b))
            tags_append(position)
            keys_append(key)
            lane_count += 1
            lane_size += size
            if lane_count < batch_size and lane_size < BATCH_BYTES:
                continue
            use = lane
        else:
            use = route(key)  # type: ignore[misc]
            use.parts.append(fmt % (len(key), key, size, value, len(ttl_b), ttl_b))
            use.tags.append(position)
            use.keys.append(key)
            if cluster_ttls is not None:
                use.values.append(value)  # type: ignore[union-attr]
                cluster_ttls[key] = int(ttl_b)
            use.size += size
            if len(use.tags) < batch_size and use.size < BATCH_BYTES:
                continue
        # a batch is full: send it (once per batch)
        tally.rows, tally.payload_bytes = rows, payload
        limiter.wait(len(use.tags))
        if writer is None:
            tally.written += len(use.tags)
            use.take()
        else:
            writer.send(use, tally)
        now = time.monotonic()
        if now - last_progress >= PROGRESS_EVERY_S:
            last_progress = now
            # a big file's total is an estimate: never let it fall behind the rows read
            progress(name, rows, total if total is None or total >= rows else rows,
                     payload_bytes=payload)
        if should_stop():
            raise _Stop(None)
        if writer is not None and writer.out_of_memory:
            raise _Stop(writer.out_of_memory)
        if writer is not None and writer.permission_denied:
            raise _permission_error(writer.permission_denied)
        if budget is not None and tally.rejected + tally.failed > budget:
            raise _Stop("max-errors")
        if lane is not None:
            parts_append, tags_append, keys_append = (
                lane.parts.append, lane.tags.append, lane.keys.append)
            lane_count = lane_size = 0
    tally.rows, tally.payload_bytes = rows, payload
    if writer is None:
        if lane is not None:
            tally.written += len(lane.tags)
            lane.take()
    else:
        for pending in writer.lanes():
            if pending.tags:
                limiter.wait(len(pending.tags))
                writer.send(pending, tally)
    progress(name, rows, rows, payload_bytes=payload)  # the total is known now


def _raw_value(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(f"encoding raw needs a string or a number, got {type(value).__name__}")


class _Writer:
    """Pipes to the primaries (one for a standalone server), and the retries of redirected rows."""

    def __init__(self, client: Any, *, window: int, nx: bool) -> None:
        self.client = client
        self.window = window
        self.nx = nx
        self.cluster = hasattr(client, "nodes_manager")
        self._lanes: dict[str, _Lane] = {}
        self._conns: list[tuple[Any, Any]] = []  # (pool, connection)
        self._slot_lane: list[_Lane | None] = [None] * 16384
        self._tally: _Tally | None = None
        self.redirected: list[tuple[int, bytes, bytes, int]] = []
        self.out_of_memory: str | None = None
        self.permission_denied: str | None = None  # a command-level NOPERM: stop, exit 3

    def lanes(self) -> list[_Lane]:
        return list(self._lanes.values())

    def _open(self, name: str, redis_client: Any) -> _Lane:
        pool = redis_client.connection_pool
        conn = pool.get_connection()
        self._conns.append((pool, conn))
        lane = _Lane(Pipe(conn, self._done, self.window), keep_values=self.cluster)
        self._lanes[name] = lane
        return lane

    def lane_for(self, key: bytes) -> _Lane:
        """The lane of a standalone server (the only one)."""
        lane = self._lanes.get("")
        return lane if lane is not None else self._open("", self.client)

    def route(self, key: bytes) -> _Lane:
        """The lane of the primary that owns ``key``'s slot (cluster)."""
        slot = self.client.keyslot(key)
        lane: _Lane | None = self._slot_lane[slot]
        if lane is not None:
            return lane
        node = self.client.nodes_manager.get_node_from_slot(slot)
        lane = self._lanes.get(node.name)
        if lane is None:
            if node.redis_connection is None:
                self.client.nodes_manager.create_redis_connections([node])
            lane = self._open(node.name, node.redis_connection)
        self._slot_lane[slot] = lane
        return lane

    def send(self, lane: _Lane, tally: _Tally) -> None:
        self._tally = tally
        payload, batch = lane.take()
        assert lane.pipe is not None
        try:
            lane.pipe.send(payload, batch)
        except OSError as exc:
            raise _connection_error(exc) from None

    def _done(self, batch: Batch) -> None:
        tally = self._tally
        assert tally is not None
        tally.written += batch.ok
        tally.skipped += batch.skipped
        oom = 0
        for index, error in batch.errors:
            key = batch.keys[index]
            if error.startswith(("MOVED ", "ASK ")):
                if not self.cluster:
                    raise rex.MovedError(error) if error.startswith("MOVED") else \
                        rex.AskError(error)
                value = batch.values[index]
                self.redirected.append((batch.tags[index], key, value, tally.ttls.get(key, 0)))
                continue
            category = error.split(" ", 1)[0] if error[:1].isupper() else "error"
            oom += category == "OOM"
            # a command refused outright fails every row: stop (exit 3); a key pattern the
            # user may not touch refuses only those rows, which are reported one by one
            if category == "NOPERM" and "to run" in error and self.permission_denied is None:
                self.permission_denied = error
            tally.problem(batch.tags[index], f"Redis refused the write: {error}", category,
                          key.decode("utf-8", "backslashreplace"), kind="failed")
        if batch.values:
            for key in batch.keys:
                tally.ttls.pop(key, None)
        if oom and oom == len(batch.tags):
            self.out_of_memory = ("Redis is out of memory (OOM: used memory > maxmemory with a "
                                  "noeviction policy); stopped after a batch was refused whole")

    def finish(self, tally: _Tally) -> None:
        """Wait for every reply, retry redirected rows through the cluster client, release."""
        self._tally = tally
        try:
            for lane in self._lanes.values():
                assert lane.pipe is not None
                lane.pipe.drain()
        except OSError as exc:
            self.abort()
            raise _connection_error(exc) from None
        for pool, conn in self._conns:
            pool.release(conn)
        self._conns = []
        redirected, self.redirected = self.redirected, []
        for position, key, value, ttl in redirected:
            try:
                done = self.client.set(key, value, px=ttl, nx=self.nx)
            except rex.ResponseError as exc:
                category = str(exc).split(" ", 1)[0] or "error"
                tally.problem(position, f"Redis refused the write: {exc}", category,
                              key.decode("utf-8", "backslashreplace"), kind="failed")
                continue
            if done:
                tally.written += 1
            else:
                tally.skipped += 1

    def abort(self) -> None:
        """Drop the connections (their replies are unread) without returning them dirty."""
        for pool, conn in self._conns:
            conn.disconnect()
            pool.release(conn)
        self._conns = []


def _connection_error(exc: OSError) -> rex.RedisError:
    if isinstance(exc, socket.timeout | TimeoutError):
        return rex.TimeoutError("timed out waiting for Redis to answer the warm's writes")
    return rex.ConnectionError(f"the connection broke while warming: {exc}")
