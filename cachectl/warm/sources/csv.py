"""``type: csv``: a header row, then one row per line; ``path`` (``.gz`` accepted).

Options: ``columns: {name: int|float|bool|json|str}`` converts those cells (others stay
strings; an empty typed cell becomes null), ``delimiter`` (one character, default ``,``).
Position: the line number where the row starts (the header is line 1).
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from cachectl.errors import SourceError
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

_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def _to_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("not a boolean (true/false, 1/0, yes/no)")


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("not an integer") from None


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("not a number") from None


def _to_json(text: str) -> Any:
    try:
        return loads_json(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None


CONVERTERS: dict[str, Callable[[str], Any]] = {
    "int": _to_int, "float": _to_float, "bool": _to_bool, "json": _to_json, "str": str,
}


class _Lines:
    """Decode a binary file line by line, remembering the lines that were not UTF-8."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.bad: tuple[int, int] | None = None  # (byte value, column) of the last bad line
        self.first = True

    def __iter__(self) -> Iterator[str]:
        for line in self._fh:
            if self.first:
                self.first = False
                line = line.removeprefix(b"\xef\xbb\xbf")
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad = (line[exc.start], exc.start + 1)
                yield line.decode("utf-8", "replace")


class CsvSource(FileSource):
    """Rows of a CSV file with a header row."""

    kind = "csv"

    def __init__(self, options: Mapping[str, Any], context: SourceContext) -> None:
        ns = context.namespace
        check_options("csv", ns, options, ("path",), ("columns", "delimiter"))
        raw = option(options, "path", str, ns, "csv")
        self.delimiter: str = option(options, "delimiter", str, ns, "csv", ",")
        if len(self.delimiter) != 1:
            raise SourceError(f"namespace {ns}: csv delimiter must be one character, "
                              f"got {self.delimiter!r}")
        columns = option(options, "columns", dict, ns, "csv", {})
        self.columns: dict[str, Callable[[str], Any]] = {}
        for name, kind in columns.items():
            if kind not in CONVERTERS:
                raise SourceError(
                    f"namespace {ns}: csv column {name!r} has unknown type {kind!r}",
                    hint=f"types: {', '.join(CONVERTERS)}")
            self.columns[str(name)] = CONVERTERS[kind]
        super().__init__(raw, context)

    def estimated_rows(self) -> int | None:
        lines = count_lines(self.path)
        return None if lines is None else max(0, lines - 1)

    def rows(self) -> Iterator[tuple[Position, Row | BadRow]]:
        try:
            with self._fh as fh:
                yield from self._rows(fh)
        except (OSError, EOFError) as exc:
            raise read_failure(self.display, exc) from None
        except csv.Error as exc:
            raise SourceError(f"warm source {self.display} is not valid CSV: {exc}") from None

    def _rows(self, fh: IO[bytes]) -> Iterator[tuple[Position, Row | BadRow]]:
        lines = _Lines(fh)
        feed = _RowLines(iter(lines))
        reader = self._reader(feed)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except (csv.Error, _RowTooLong) as exc:
            raise SourceError(f"warm source {self.display}: the header row is not valid CSV "
                              f"({exc})") from None
        if lines.bad is not None:
            raise SourceError(f"warm source {self.display}: the header row is not UTF-8")
        missing = [c for c in self.columns if c not in header]
        if missing:
            raise SourceError(
                f"warm source {self.display} has no column {', '.join(map(repr, missing))} "
                "(named in columns:)", hint=f"header: {', '.join(header)}")
        typed = [(name, conv) for name, conv in self.columns.items() if conv is not str]
        width = len(header)
        position = len(feed.taken) + 1  # the line the next row starts on
        while True:
            feed.taken = []
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, _RowTooLong) as exc:
                # reject the row where it starts, and read again from the line after it:
                # an unterminated quote must not swallow the rows that follow
                yield position, BadRow(_quote_problem(exc))
                feed.replay.extendleft(reversed(feed.taken[1:]))
                position += 1
                reader = self._reader(feed)  # the old one is inside the broken field
                continue
            start = position
            position += len(feed.taken)
            if lines.bad is not None:
                byte, col = lines.bad
                lines.bad = None
                yield start, BadRow(f"not UTF-8 (byte 0x{byte:02x} at column {col})")
                continue
            if len(cells) != width:
                if not cells:
                    continue  # a blank line
                yield start, BadRow(f"{len(cells)} cells, the header has {width}")
                continue
            row: dict[str, Any] = dict(zip(header, cells, strict=True))
            problem = None
            for name, conv in typed:
                text = row[name]
                if text == "":
                    row[name] = None
                    continue
                try:
                    row[name] = conv(text)
                except ValueError as exc:
                    problem = f"column {name}: {text!r} is {exc}"
                    break
            yield start, (row if problem is None else BadRow(problem))

    def _reader(self, feed: _RowLines) -> Any:
        # strict: a quoted field still open at the end of the file is an error, not a value
        return csv.reader(feed, delimiter=self.delimiter, strict=True)


# a quoted value may hold newlines; one over more lines than this is an unterminated quote
MAX_ROW_LINES = 1000


class _RowTooLong(Exception):
    def __str__(self) -> str:
        return f"a quoted field opened on this line runs over {MAX_ROW_LINES} lines"


class _RowLines:
    """Feeds a csv reader line by line, keeping the lines of the row being read (``taken``)
    so that after a broken row the lines after its first can be read again (``replay``)."""

    def __init__(self, source: Iterator[str]) -> None:
        self.source = source
        self.replay: deque[str] = deque()
        self.taken: list[str] = []

    def __iter__(self) -> _RowLines:
        return self

    def __next__(self) -> str:
        if len(self.taken) >= MAX_ROW_LINES:
            raise _RowTooLong
        line = self.replay.popleft() if self.replay else next(self.source)
        self.taken.append(line)
        return line


def _quote_problem(exc: Exception) -> str:
    if isinstance(exc, _RowTooLong):
        return f"{exc} (an unterminated quote?); the lines after it were read again"
    if "unexpected end of data" in str(exc):
        return ("a quoted field opened on this line is never closed (an unterminated quote); "
                "the lines after it were read again")
    return f"not valid CSV ({exc})"


def open_source(options: Mapping[str, Any], context: SourceContext) -> CsvSource:
    return CsvSource(options, context)
