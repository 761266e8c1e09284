"""``type: jsonl``: one JSON object per line; ``path`` (``.gz`` accepted). Position: line number."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from cachectl.warm import codec
from cachectl.warm.sources import (
    BadRow,
    FileSource,
    Position,
    Row,
    SourceContext,
    check_options,
    count_lines,
    loads_json,
    option,
    read_failure,
)

# the C scanner directly: json.loads' checks and wrappers cost a third of a row here
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
BLOCK_BYTES = 1 << 20


class JsonlSource(FileSource):
    """Rows of a JSON Lines file; blank lines are skipped, every other line must be an object."""

    kind = "jsonl"

    def __init__(self, options: Mapping[str, Any], context: SourceContext) -> None:
        check_options("jsonl", context.namespace, options, ("path",), ())
        super().__init__(option(options, "path", str, context.namespace, "jsonl"), context)

    def estimated_rows(self) -> int | None:
        return count_lines(self.path)

    def rows(self) -> Iterator[tuple[Position, Row | BadRow]]:
        for number, row, _ in self.encoded_rows():
            yield number, row

    def encoded_rows(self) -> Iterator[tuple[Position, Row | BadRow, bytes | None]]:
        """Like ``rows()``, each row with its stored bytes when they came cheaply (orjson's
        fast path, provably the stdlib's bytes; see cachectl.warm.codec), else None."""
        # codec.fast_row's body, inlined (a call per row is measurable)
        fast = codec.fast_row is not None
        fast_loads, fast_dumps = codec.ORJSON_LOADS, codec.ORJSON_DUMPS
        fast_errors, view = codec.ORJSON_ERRORS, codec.EXPONENT_VIEW
        slow = self._slow_line
        number = 0
        try:
            with self._fh as fh:
                for line in fh:
                    number += 1
                    if fast:
                        try:
                            row = fast_loads(line)
                            data = fast_dumps(row)
                        except fast_errors:
                            pass  # the stdlib path below reads it or words the reason
                        else:
                            if row.__class__ is dict and b".0000" not in data \
                                    and b"0e-" not in data.translate(view):
                                yield number, row, data
                                continue
                    parsed = slow(number, line)
                    if parsed is not None:
                        yield number, parsed, None
        except (OSError, EOFError) as exc:
            raise read_failure(self.display, exc) from None

    def line_blocks(self, size: int = BLOCK_BYTES) -> Iterator[tuple[Position, list[bytes]]]:
        """The file's lines (each with its newline, as ``encoded_rows`` reads them) in blocks
        of about ``size`` bytes, each with the number of its first line: for a reader that
        parses many lines at a time (cachectl.warm.bulk) and hands the lines it cannot take
        to ``parse_line``."""
        number = 1
        try:
            with self._fh as fh:
                while lines := fh.readlines(size):
                    yield number, lines
                    number += len(lines)
        except (OSError, EOFError) as exc:
            raise read_failure(self.display, exc) from None

    def parse_line(self, number: Position, line: bytes) -> tuple[Row | BadRow | None, bytes | None]:
        """Line ``number`` as ``encoded_rows`` reads it: (row or BadRow, its stored bytes or
        None); (None, None) for a blank line, which is skipped."""
        fast = codec.fast_row
        if fast is not None:
            got = fast(line)
            if got is not None and got[0].__class__ is dict:
                return got
        return self._slow_line(number, line), None

    def _slow_line(self, number: Position, line: bytes) -> Row | BadRow | None:
        """The stdlib's reading of a line (None: blank), and the reason it is not a row."""
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        try:
            text = line.decode("utf-8")
            try:
                row, end = _SCAN(text, 0)
                if end != len(text) and not text[end:].isspace():
                    raise ValueError
            except (StopIteration, ValueError, RecursionError):
                row = loads_json(text)  # the slow path names the problem
        except UnicodeDecodeError as exc:
            return BadRow(f"not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})")
        except ValueError as exc:
            if not line.strip():
                return None
            return BadRow(_json_problem(exc))
        if row.__class__ is not dict:
            return BadRow(f"a JSON {_kind(row)}, not an object")
        return row


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at column {exc.colno})"
    return f"not JSON ({exc})"


def _kind(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def open_source(options: Mapping[str, Any], context: SourceContext) -> JsonlSource:
    return JsonlSource(options, context)

