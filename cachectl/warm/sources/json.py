"""``type: json``: a JSON document holding the rows: a top-level array, or ``items: a.b.c``.

The document is parsed whole (use jsonl for large seeds). Position: the index in the array.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from cachectl.errors import SourceError
from cachectl.warm.sources import (
    BadRow,
    FileSource,
    Position,
    Row,
    SourceContext,
    check_options,
    loads_json,
    option,
    read_failure,
)


class JsonSource(FileSource):
    """The objects of one JSON array inside a document."""

    kind = "json"

    def __init__(self, options: Mapping[str, Any], context: SourceContext) -> None:
        check_options("json", context.namespace, options, ("path",), ("items",))
        self.items: str | None = option(options, "items", str, context.namespace, "json")
        super().__init__(option(options, "path", str, context.namespace, "json"), context)
        self._array: list[Any] | None = None
        self._load()  # parsed now: a broken document fails before anything is written

    @property
    def description(self) -> str:
        return f"json {self.display}" + (f" (items: {self.items})" if self.items else "")

    def locate(self, position: Position) -> str:
        return f"{self.display}: {self.items or ''}[{position}]"

    def _load(self) -> list[Any]:
        if self._array is not None:
            return self._array
        try:
            with self._fh as fh:
                data = fh.read()
        except (OSError, EOFError) as exc:
            raise read_failure(self.display, exc) from None
        try:
            doc = loads_json(data)
        except UnicodeDecodeError as exc:
            raise SourceError(f"warm source {self.display} is not UTF-8 "
                              f"(byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise SourceError(f"warm source {self.display} is not JSON: {exc.msg} "
                              f"(line {exc.lineno}, column {exc.colno})") from None
        except ValueError as exc:
            raise SourceError(f"warm source {self.display} is not JSON: {exc}") from None
        if self.items:
            walked: list[str] = []
            for part in self.items.split("."):
                if not isinstance(doc, dict) or part not in doc:
                    at = ".".join(walked) or "the top level"
                    keys = ", ".join(map(str, list(doc)[:12])) if isinstance(doc, dict) else ""
                    raise SourceError(
                        f"warm source {self.display} has no {part!r} in {at} (items: {self.items})",
                        hint=f"keys there: {keys}" if keys else "items names a path of object "
                        "keys to the array, e.g. items: data.products")
                doc = doc[part]
                walked.append(part)
        if not isinstance(doc, list):
            where = f"{self.items!r}" if self.items else "the top level"
            raise SourceError(
                f"warm source {self.display}: {where} is not an array",
                hint="a json source is an array of objects, or set items: path.to.array")
        self._array = doc
        return doc

    def estimated_rows(self) -> int | None:
        return len(self._load())

    def rows(self) -> Iterator[tuple[Position, Row | BadRow]]:
        for index, item in enumerate(self._load()):
            if item.__class__ is dict:
                yield index, item
            else:
                yield index, BadRow(f"a JSON {type(item).__name__}, not an object")


def open_source(options: Mapping[str, Any], context: SourceContext) -> JsonSource:
    return JsonSource(options, context)
