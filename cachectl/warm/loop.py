"""One namespace's warm: validate each row, render its key and value, draw its TTL, and append
its ``SET`` to the lane's batch; a full batch is sent, progress reported, stops checked.

``RowWarm.rows(stream)`` is the row-at-a-time path every source takes (the hot loop:
keep it lean); ``cachectl.warm.bulk`` adds a path that takes whole chunks of JSONL lines at a
time and hands a chunk that is not plain back to ``rows`` line by line.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from cachectl.compression import value_encoder
from cachectl.freshness import ttl_bounds_ms
from cachectl.pacing import RateLimiter
from cachectl.policy.template import KeyParamError, KeyTemplate
from cachectl.policy.units import format_size_bytes
from cachectl.warm.codec import dumps as _dumps
from cachectl.warm.codec import encode_row
from cachectl.warm.model import SAMPLE_KEYS, Tally
from cachectl.warm.pipe import SET_NX, SET_PX
from cachectl.warm.seen import SeenKeys
from cachectl.warm.sources import BadRow
from cachectl.warm.writer import Lane, Writer, permission_error

BATCH_SIZE = 1000  # commands per write
BATCH_BYTES = 1 << 19  # …or this many bytes, whichever comes first
PROGRESS_EVERY_S = 0.1


class WarmProgress(Protocol):
    def __call__(self, task: str, done: int, total: int | None = None, *,
                 payload_bytes: int = 0) -> None:
        """``done`` rows of namespace ``task`` read (of ``total`` if known), bytes written."""


def no_progress(task: str, done: int, total: int | None = None, *, payload_bytes: int = 0) -> None:
    pass


class Stop(Exception):
    """Stop reading rows: interrupted, too many errors, or Redis out of memory."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason


def key_renderer(template: KeyTemplate) -> Callable[[dict[str, Any]], str]:
    """``template.render``, with a fast path for the common case that gives the same key.

    Rows whose placeholder value is a non-empty str without ':' or a plain int are rendered
    here (``fast_key``; the hot loop inlines the same test); every other row goes through
    ``template.render`` (and its errors).
    """
    render = template.render
    fast = fast_key(template)
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


def _seen_keys(fast: tuple[str, str, str] | None) -> SeenKeys:
    """The set of keys sent, told the key's bytes around its int id when it has that form."""
    if fast is not None:
        try:
            return SeenKeys(fast[1].encode("utf-8"), fast[2].encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate in the template: every key is hashed
            pass
    return SeenKeys()


def fast_key(template: KeyTemplate) -> tuple[str, str, str] | None:
    """(field, head, tail) when ``template`` has one placeholder without a modifier: a row
    whose field is a plain int, or a non-empty str without ':', renders as head+value+tail
    (``key_renderer``'s fast path, inlined in the hot loop); None otherwise."""
    if len(template.placeholders) != 1 or any(seg.modifier is not None
                                              for seg in template.segments):
        return None
    pieces = [(seg.prefix, seg.placeholder, seg.suffix) for seg in template.segments]
    index = next(i for i, (_, ph, _) in enumerate(pieces) if ph is not None)
    head = ":".join(p[0] if p[1] is None else "" for p in pieces[:index])
    head = (head + ":" if index else "") + pieces[index][0]
    tail = pieces[index][2] + "".join(":" + p[0] for p in pieces[index + 1:])
    return template.placeholders[0], head, tail


class RowWarm:
    """The state of one namespace's warm, shared by the row-at-a-time and the bulk paths.

    Per row: one key (the template's single placeholder inlined when it can be), one value
    (the bytes a jsonl source already encoded, else compact JSON), one TTL draw, one RESP
    command appended to the lane's batch; everything else happens per batch (``flush``).
    """

    def __init__(self, tally: Tally, writer: Writer | None, *, only_missing: bool,
                 batch_size: int, limiter: RateLimiter, progress: WarmProgress,
                 should_stop: Callable[[], bool], error_budget: int | None,
                 rng: random.Random | None) -> None:
        self.tally = tally
        self.writer = writer
        ns = tally.target.namespace
        self.ns = ns
        self.source = tally.target.source
        self.only_missing = only_missing
        self.batch_size = batch_size
        self.limiter = limiter
        self.progress = progress
        self.should_stop = should_stop
        self.budget = error_budget
        self.fmt = SET_NX if only_missing else SET_PX
        self.total = self.source.estimated_rows()
        self.ttl_rng = rng or random.Random()
        self.fast_key = fast_key(ns.template)
        self.seen = _seen_keys(self.fast_key)  # every key sent: a duplicate row is refused
        warm = ns.warm
        self.value_field = warm.value if warm is not None else None
        self.raw = warm is not None and warm.encoding == "raw"
        # compress (or escape a raw value that begins with the frame's magic); None: as is
        self.encode_stored = value_encoder(ns.compress, self.raw)
        self.rows_read = 0
        self.payload = 0
        self.last_progress = time.monotonic()
        self.lane: Lane | None = None  # the one lane (standalone server, dry run), else None
        self.cluster_ttls: dict[bytes, int] | None = None
        if writer is None:
            self.lane = Lane(None, keep_values=False)
        elif not writer.cluster:
            self.lane = writer.lane_for(b"")
        else:
            self.cluster_ttls = tally.ttls

    def reject(self, position: int, reason: str, category: str, key: str | None = None) -> None:
        """Count a row refused before writing (``rows`` keeps its counters in sync on exit)."""
        tally = self.tally
        tally.problem(position, reason, category, key)
        if self.budget is not None and tally.rejected + tally.failed > self.budget:
            raise Stop("max-errors")

    def rows(self, stream: Iterable[tuple[int, Any, bytes | None]]) -> None:
        """Take rows one at a time: (position, row or BadRow, its stored bytes or None)."""
        ns = self.ns
        template = ns.template
        render_key = key_renderer(template)
        fast = self.fast_key
        key_field, key_head, key_tail = fast if fast is not None else ("", "", "")
        placeholders = template.placeholders
        value_field, raw = self.value_field, self.raw
        encode_stored = self.encode_stored
        limit = ns.max_value_bytes
        fmt = self.fmt
        seen = self.seen
        add_key, add_id = seen.add_key, seen.add_id
        ids_known = seen.head is not None
        dumps = _dumps
        # write_ttl_ms's arithmetic inlined (the same draws; tests hold the written TTLs equal)
        ttl_low, ttl_high = ttl_bounds_ms(ns)
        jittered = ttl_low != ttl_high
        ttl_width, draw = ttl_high - ttl_low + 1, self.ttl_rng.getrandbits
        fixed_ttl = b"%d" % ttl_low
        samples = self.tally.samples
        n_samples = len(samples)
        lane = self.lane
        route = self.writer.route if self.writer is not None else None
        cluster_ttls = self.cluster_ttls
        reject = self.reject
        batch_size = self.batch_size
        rows, payload = self.rows_read, self.payload
        lane_count = lane_size = 0
        if lane is not None:
            parts_append, tags_append, keys_append = (
                lane.parts.append, lane.tags.append, lane.keys.append)
            lane_count, lane_size = len(lane.tags), lane.size
        try:
            for position, row, value in stream:
                rows += 1
                if row.__class__ is not dict:
                    reject(position, row.reason if isinstance(row, BadRow) else "not a row",
                           "unreadable row")
                    continue
                key_text = None
                int_id = None
                if fast is not None:
                    part = row.get(key_field)
                    cls = part.__class__
                    if cls is int:
                        key_text = key_head + str(part) + key_tail
                        int_id = part
                    elif cls is str and part and ":" not in part:
                        key_text = key_head + part + key_tail
                if key_text is None:
                    try:
                        key_text = render_key(row)
                    except KeyParamError as exc:
                        missing = [p for p in placeholders if p not in row]
                        if missing:
                            reject(position, f"no field {missing[0]!r} for key "
                                   f"{template.source!r}", "missing field")
                        else:
                            reject(position, str(exc), "bad key value")
                        continue
                try:
                    key = key_text.encode("utf-8")
                    if value is not None:
                        pass  # the source encoded it already
                    elif value_field is None:
                        value = encode_row(row)
                    elif value_field not in row:
                        reject(position, f"no field {value_field!r} (warm.value)",
                               "missing field", key_text)
                        continue
                    elif raw:
                        value = raw_value(row[value_field])
                    else:
                        value = dumps(row[value_field]).encode("utf-8")
                except (TypeError, ValueError, RecursionError) as exc:
                    # UnicodeEncodeError (an unpaired surrogate) is a ValueError
                    reject(position, f"value cannot be encoded: {exc}", "bad value", key_text)
                    continue
                if encode_stored is not None:
                    value = encode_stored(value)
                size = len(value)  # as stored: max_value_bytes is checked after compression
                if limit is not None and size > limit:
                    reject(position, f"value is {size:,} bytes, over max_value_bytes "
                           f"{format_size_bytes(limit)}", "too large", key_text)
                    continue
                if not (add_id(int_id) if int_id is not None and ids_known else add_key(key)):
                    reject(position, f"duplicate key {key_text} (an earlier row has it; the "
                           "first is kept)", "duplicate key", key_text)
                    continue
                if n_samples < SAMPLE_KEYS:
                    samples.append(key_text)
                    n_samples += 1
                ttl_b = b"%d" % (ttl_low + (draw(32) * ttl_width >> 32)) if jittered else fixed_ttl
                payload += len(key) + size
                if lane is not None:  # one connection: its lists bound to locals, counted here
                    parts_append(fmt % (len(key), key, size, value, len(ttl_b), ttl_b))
                    tags_append(position)
                    keys_append(key)
                    lane_count += 1
                    lane_size += size
                    if lane_count < batch_size and lane_size < BATCH_BYTES:
                        continue
                    lane.size = lane_size
                    self.rows_read, self.payload = rows, payload
                    self.flush(lane)
                    parts_append, tags_append, keys_append = (
                        lane.parts.append, lane.tags.append, lane.keys.append)
                    lane_count = lane_size = 0
                else:
                    use = route(key)  # type: ignore[misc]
                    use.parts.append(fmt % (len(key), key, size, value, len(ttl_b), ttl_b))
                    use.tags.append(position)
                    use.keys.append(key)
                    if cluster_ttls is not None:
                        use.values.append(value)  # type: ignore[union-attr]
                        cluster_ttls[key] = int(ttl_b)
                    use.size += size
                    if len(use.tags) >= batch_size or use.size >= BATCH_BYTES:
                        self.rows_read, self.payload = rows, payload
                        self.flush(use)
        finally:
            if lane is not None:
                lane.size = lane_size
            self.rows_read, self.payload = rows, payload
            self.tally.rows, self.tally.payload_bytes = rows, payload

    def flush(self, use: Lane) -> None:
        """A batch is full: send it, report progress, and stop when asked to (once per batch)."""
        tally, writer = self.tally, self.writer
        tally.rows, tally.payload_bytes = self.rows_read, self.payload
        self.limiter.wait(len(use.tags))
        if writer is None:
            tally.written += len(use.tags)
            use.take()
        else:
            writer.send(use, tally)
        now = time.monotonic()
        if now - self.last_progress >= PROGRESS_EVERY_S:
            self.last_progress = now
            total, rows = self.total, self.rows_read
            # a big file's total is an estimate: never let it fall behind the rows read
            self.progress(self.ns.name, rows, total if total is None or total >= rows else rows,
                          payload_bytes=self.payload)
        if self.should_stop():
            raise Stop(None)
        if writer is not None and writer.out_of_memory:
            raise Stop(writer.out_of_memory)
        if writer is not None and writer.permission_denied:
            raise permission_error(writer.permission_denied)
        if self.budget is not None and tally.rejected + tally.failed > self.budget:
            raise Stop("max-errors")

    def finish(self) -> None:
        """Send what the lanes hold; the total is known now."""
        tally, writer = self.tally, self.writer
        rows = self.rows_read
        tally.rows, tally.payload_bytes = rows, self.payload
        if writer is None:
            if self.lane is not None:
                tally.written += len(self.lane.tags)
                self.lane.take()
        else:
            for pending in writer.lanes():
                if pending.tags:
                    self.limiter.wait(len(pending.tags))
                    writer.send(pending, tally)
        self.progress(self.ns.name, rows, rows, payload_bytes=self.payload)


def render_value(row: dict[str, Any], value_field: str | None, raw: bool) -> bytes:
    """The plain bytes warm stores for ``row`` (before compression): the row as compact
    JSON, or its ``value_field`` as JSON or, with ``raw``, as text. ``RowWarm.rows`` inlines
    the same steps (its hot loop); raises KeyError (no such field), TypeError, ValueError."""
    if value_field is None:
        return encode_row(row)
    if raw:
        return raw_value(row[value_field])
    return _dumps(row[value_field]).encode("utf-8")


def raw_value(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(f"encoding raw needs a string or a number, got {type(value).__name__}")
