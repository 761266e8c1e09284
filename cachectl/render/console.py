"""The two consoles (results on stdout, messages on stderr) and JSON output.

Colour follows Rich's own rules: none when the stream is not a terminal, none
when NO_COLOR is set.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # Rich is imported when a console is first needed, not for --json output
    from rich.console import Console


def _console(**options: Any) -> Console:
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # Rich's default exits 1; `cachectl … | head` is not a failure, so let
            # cli.main() see the BrokenPipeError and exit 0
            self.quiet = True
            raise BrokenPipeError

    return _Console(**options)


@cache
def stdout() -> Console:
    return _console(highlight=False, soft_wrap=False)


@cache
def stderr() -> Console:
    return _console(stderr=True, highlight=False)


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (stderr by default) is an interactive terminal."""
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def jsonable(obj: Any) -> Any:
    """Turn result objects (dataclasses, enums, paths, bytes, tuples) into JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        to_json = getattr(obj, "to_json", None)
        if callable(to_json):
            return jsonable(to_json())
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.name.startswith("_")}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(jsonable(k)) if not isinstance(k, str) else k: jsonable(v)
                for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def emit_json(doc: Any, stream: IO[str] | None = None) -> None:
    """Print one JSON document on stdout (and nothing else there)."""
    out = stream or sys.stdout
    write_json(out, jsonable(doc), indent=2)
    out.flush()


def emit_json_line(doc: Any, stream: IO[str] | None = None) -> None:
    """Print one JSON line (for streaming listings)."""
    write_json(stream or sys.stdout, jsonable(doc), separators=(",", ":"))


def write_json(out: IO[str], doc: Any, **options: Any) -> None:
    """Write ``doc`` and a newline: UTF-8 as is, but ``\\u`` escapes (``\\u00e9``) where the stream
    cannot encode a character (a lone surrogate read from a source row, a non-UTF-8
    terminal). Text streams encode a write whole, so nothing is half-written."""
    try:
        out.write(json.dumps(doc, ensure_ascii=False, **options) + "\n")
    except UnicodeEncodeError:
        out.write(json.dumps(doc, ensure_ascii=True, **options) + "\n")


def display_key(key: bytes) -> str:
    """A key as text an operator can read and copy: UTF-8, with other bytes as \\xNN."""
    return key.decode("utf-8", "backslashreplace")
