"""The bulk path of a JSONL warm: many lines per step, with C-level work only.

A JSON Lines file whose rows are plain (every line an object that orjson reads and writes
back as the stdlib would, the key's field a plain int or a plain string, no value over
``max_value_bytes``, no key seen before) is taken ``CHUNK_ROWS`` lines at a time: one
``map`` parses the chunk, one encodes it, one renders its keys, a set checks the keys against
the ones sent, one comprehension draws the TTLs (the same draws, in row order, as the
row-at-a-time path) and one ``%`` writes the chunk's ``SET`` commands. A chunk with
anything else in it (a blank or broken line, a missing field, a float the two encoders
write differently, a duplicate, an oversized value…) is handed whole, before any of it is
counted or drawn, to ``RowWarm.rows`` line by line, which reads, rejects and reports
exactly as it always does.
So the bulk path changes the speed, never the keys, values, TTLs, counts or problems.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterator
from itertools import chain, repeat
from operator import add, itemgetter, mul, rshift
from typing import Any

from cachectl.freshness import ttl_bounds_ms
from cachectl.warm import codec
from cachectl.warm.codec import FLAT_TYPES, NO_FLOAT, NO_NONE
from cachectl.warm.loop import BATCH_BYTES, RowWarm
from cachectl.warm.model import SAMPLE_KEYS
from cachectl.warm.sources import BadRow, Position, Row

_WORD = next(code for code in "IL" if array(code).itemsize == 4)  # an unsigned 32-bit word
CHUNK_ROWS = 64  # lines per step: parsed and re-encoded while the rows are still in cache

LineBlocks = Callable[[], Iterator[tuple[Position, list[bytes]]]]
TupleBatches = Callable[[], Iterator[tuple[Position, list[str], list[Any]]]]
ParseLine = Callable[[Position, bytes], tuple[Row | BadRow | None, bytes | None]]


def bulk_reader(warm: RowWarm) -> Callable[[RowWarm], None] | None:
    """How ``warm`` takes the bulk path (``warm_lines`` or ``warm_tuples`` bound to its
    source), or None: a source of JSON lines or of SQLite tuples, orjson in use, a key with
    one plain placeholder, the whole row stored as JSON, and one lane (a standalone server or
    a dry run; a cluster routes per key)."""
    if codec.fast_row is None or codec.ORJSON_LOADS is None or warm.fast_key is None \
            or warm.value_field is not None or warm.lane is None:
        return None
    _, head, tail = warm.fast_key
    try:
        head.encode("utf-8")
        tail.encode("utf-8")
    except UnicodeEncodeError:
        return None
    blocks = getattr(warm.source, "line_blocks", None)
    parse = getattr(warm.source, "parse_line", None)
    if callable(blocks) and callable(parse):
        return lambda w: warm_lines(w, blocks, parse)
    batches = getattr(warm.source, "tuple_batches", None)
    if callable(batches):
        return lambda w: warm_tuples(w, batches)
    return None


class _Chunk:
    """What every chunk shares once its rows and their bytes are known: keys, the checks
    that send a chunk back to the row path, and the commands appended to the lane."""

    def __init__(self, warm: RowWarm) -> None:
        assert warm.lane is not None and warm.fast_key is not None
        self.warm = warm
        self.lane = warm.lane
        field, head, tail = warm.fast_key
        self.get_part = itemgetter(field)
        self.int_key = (_escape(head) + "%d" + _escape(tail)).encode("utf-8").__mod__
        self.str_key = (_escape(head) + "%s" + _escape(tail)).__mod__
        self.limit = warm.ns.max_value_bytes
        self.encode_stored = warm.encode_stored
        self.command = _command_writer(warm)

    def sizes(self, count: int) -> Iterator[int]:
        """Chunk sizes for a block of ``count`` rows: never past the batch (batch_size rows,
        as the row path sends)."""
        lane, batch_size = self.lane, self.warm.batch_size
        start = 0
        while start < count:
            n = min(CHUNK_ROWS, batch_size - len(lane.tags), count - start)
            yield n
            start += n

    def take(self, number: Position, rows: list[Any], datas: list[bytes],
             floats: bool = True) -> bool:
        """Append the rows (numbered from ``number``) and their stored bytes; False, with
        nothing counted or drawn, when the chunk must go row by row. ``floats``: the bytes
        may hold a float orjson writes differently (checked here)."""
        n = len(rows)
        try:
            parts = list(map(self.get_part, rows))
            kinds = set(map(type, parts))
            if kinds == _ONLY_INTS:
                keys = list(map(self.int_key, parts))
                ints = True
            elif kinds == _ONLY_STRS and all(parts) and ":" not in "".join(parts):
                keys = [text.encode("utf-8") for text in map(self.str_key, parts)]
                ints = False
            else:
                return False
        except (KeyError, ValueError):  # a missing field, an int too long, a lone surrogate
            return False
        if floats and codec.floats_may_differ(b"".join(datas)):
            return False
        if self.encode_stored is not None:
            datas = list(map(self.encode_stored, datas))
        sizes = list(map(len, datas))  # as stored
        warm = self.warm
        if self.limit is not None and max(sizes) > self.limit:
            return False
        # last: recorded only when the chunk is taken (a duplicate sends it row by row)
        if not (warm.seen.add_ids(parts) if ints else warm.seen.add_texts(parts, keys)):
            return False
        samples = warm.tally.samples
        if len(samples) < SAMPLE_KEYS:
            samples.extend(k.decode("utf-8") for k in keys[:SAMPLE_KEYS - len(samples)])
        lane = self.lane
        lane.parts.append(self.command(keys, sizes, datas))
        lane.tags.extend(range(number, number + n))
        lane.keys.extend(keys)
        size = sum(sizes)
        lane.size += size
        warm.rows_read += n
        warm.payload += size + sum(map(len, keys))
        if len(lane.tags) >= warm.batch_size or lane.size >= BATCH_BYTES:
            warm.flush(lane)
        return True


_ONLY_DICTS, _ONLY_INTS, _ONLY_STRS = {dict}, {int}, {str}


def warm_lines(warm: RowWarm, blocks: LineBlocks, parse_line: ParseLine) -> None:
    """Warm every line of ``blocks()`` into ``warm``'s lane (see the module doc)."""
    loads, dumps = codec.ORJSON_LOADS, codec.ORJSON_DUMPS
    assert loads is not None and dumps is not None
    errors = codec.ORJSON_ERRORS
    chunk = _Chunk(warm)
    take = chunk.take
    for first, lines in blocks():
        start = 0
        for n in chunk.sizes(len(lines)):
            part = lines[start:start + n]
            number = first + start
            start += n
            try:
                rows = list(map(loads, part))
                if set(map(type, rows)) == _ONLY_DICTS and take(
                        number, rows, list(map(dumps, rows))):
                    continue
            except errors:
                pass
            _lines_one_by_one(warm, number, part, parse_line)


def warm_tuples(warm: RowWarm, batches: TupleBatches) -> None:
    """Warm every row of ``batches()`` (the first row's number, the column names, the rows'
    values as tuples) into ``warm``'s lane: a chunk of plain values (str, int, float, bool,
    None) is encoded by orjson when provably the stdlib's bytes (``codec.encode_row``'s
    rules, for a whole chunk at once); any other chunk goes row by row."""
    dumps = codec.ORJSON_DUMPS
    assert dumps is not None
    chunk = _Chunk(warm)
    take = chunk.take
    flat, no_float, no_none = FLAT_TYPES, NO_FLOAT, NO_NONE
    for first, names, values in batches():
        start = 0
        for n in chunk.sizes(len(values)):
            part = values[start:start + n]
            number = first + start
            start += n
            rows = list(map(dict, map(zip, repeat(names), part)))
            kinds = set(map(type, chain.from_iterable(part)))
            if kinds <= flat:
                try:
                    datas = list(map(dumps, rows))
                except TypeError:  # orjson.JSONEncodeError is one: an int beyond 64 bits…
                    pass
                else:
                    if kinds <= no_float:
                        if take(number, rows, datas, floats=False):
                            continue
                    elif kinds <= no_none and b"null" not in b"".join(datas) \
                            and take(number, rows, datas):  # orjson writes NaN as null
                        continue
            warm.rows(zip(range(number, number + n), rows, repeat(None)))


def _lines_one_by_one(warm: RowWarm, first: Position, chunk: list[bytes],
                      parse_line: ParseLine) -> None:
    def stream() -> Iterator[tuple[Position, Any, bytes | None]]:
        for number, line in enumerate(chunk, first):
            row, value = parse_line(number, line)
            if row is not None:  # None: a blank line, skipped
                yield number, row, value

    warm.rows(stream())


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def _command_writer(warm: RowWarm) -> Callable[[list[bytes], list[int], list[bytes]], bytes]:
    """(keys, their values' sizes, values) -> their ``SET key value PX ttl [NX]`` commands as
    one bytes, drawing one TTL per row in order exactly as ``RowWarm.rows`` does (the same
    formula, the same rng calls). One ``%`` writes a whole chunk: the command's format
    repeated once per row, filled from the rows' fields laid end to end."""
    ns = warm.ns
    nx = b"$2\r\nNX\r\n" if warm.only_missing else b""
    head = b"*6\r\n" if warm.only_missing else b"*5\r\n"
    head += b"$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n"
    formats: dict[int, bytes] = {}
    flat = chain.from_iterable
    lowest, highest = ttl_bounds_ms(ns)
    if lowest == highest:
        ttl = b"%d" % lowest  # no jitter: no draw, one TTL
        fixed = head + b"$%d\r\n%b\r\n" % (len(ttl), ttl) + nx

        def constant(keys: list[bytes], sizes: list[int], values: list[bytes]) -> bytes:
            n = len(keys)
            fmt = formats.get(n) or formats.setdefault(n, fixed * n)
            return fmt % tuple(flat(zip(map(len, keys), keys, sizes, values, strict=True)))

        return constant
    randbytes, width = warm.ttl_rng.randbytes, highest - lowest + 1
    swap = sys.byteorder != "little"

    def ttls(n: int) -> Iterator[int]:
        """write_ttl_ms's n next draws: randbytes(4n) is getrandbits(32) n times, word by word
        (little-endian), so ``lowest + (word * width >> 32)`` over them, in C, per chunk."""
        words = array(_WORD, randbytes(4 * n))
        if swap:
            words.byteswap()
        return map(add, repeat(lowest), map(rshift, map(mul, words, repeat(width)), repeat(32)))

    if len(str(lowest)) != len(str(highest)):
        varying = head + b"$%d\r\n%d\r\n" + nx

        def any_width(keys: list[bytes], sizes: list[int], values: list[bytes]) -> bytes:
            return b"".join(varying % (len(k), k, size, v, len(str(t)), t)
                            for k, size, v, t in zip(keys, sizes, values, ttls(len(keys)), strict=True))

        return any_width
    # every TTL has the same number of digits: %d writes it, no bytes object per row
    width_fmt = head + b"$" + str(len(str(highest))).encode() + b"\r\n%d\r\n" + nx

    def jittered(keys: list[bytes], sizes: list[int], values: list[bytes]) -> bytes:
        n = len(keys)
        fmt = formats.get(n) or formats.setdefault(n, width_fmt * n)
        return fmt % tuple(flat(zip(map(len, keys), keys, sizes, values, ttls(n), strict=True)))

    return jittered
