"""Warm sources: readers that turn a namespace's ``warm.source`` into rows.

A source yields ``(position, row)`` pairs: ``row`` is a dict of fields, or a
``BadRow`` (a line that is not JSON, a cell of the wrong type…) that the writer
rejects without stopping. ``locate(position)`` names the row for error reports
(``products.jsonl:12``, ``row 7``). A source that cannot be opened or read at all
raises ``SourceError`` (exit 2).

A source whose read can block for long (a query waiting on a lock, a slow API) may have
``interrupt()``: warm calls it from another thread once Ctrl-C or SIGTERM asked it to stop
while the source is being read, and the read then raises ``ReadInterrupted`` promptly
(the rows already read are written; the run exits 130) instead of waiting out a timeout.

Built-in types: jsonl, json, csv, sql, http. Further types come from the
``cachectl.sources`` entry-point group: the entry point names the type and loads a
factory ``(options, context) -> Source`` (see docs/warm.md for a worked example).
"""

from __future__ import annotations

import gzip
import importlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from json import loads as _json_loads  # not `import json`: the json submodule takes that name
from pathlib import Path
from typing import IO, Any, Protocol

from cachectl.errors import SourceError
from cachectl.files import open_regular
from cachectl.policy.model import did_you_mean

ENTRY_POINT_GROUP = "cachectl.sources"
BUILTIN_SOURCES: dict[str, str] = {
    "jsonl": "cachectl.warm.sources.jsonl",
    "json": "cachectl.warm.sources.json",
    "csv": "cachectl.warm.sources.csv",
    "sql": "cachectl.warm.sources.sql",
    "http": "cachectl.warm.sources.http",
}
FILE_TYPES = ("jsonl", "json", "csv")
READ_BUFFER = 1 << 18


class ReadInterrupted(Exception):
    """Raised by a source's read after its ``interrupt()`` cancelled it (Ctrl-C, SIGTERM)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row the source could read but not turn into fields; ``reason`` says why."""

    reason: str


Row = dict[str, Any]
Position = int


@dataclass(frozen=True)
class SourceContext:
    """What a source may use besides its options: where relative paths start, and env."""

    namespace: str
    base_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)


class Source(Protocol):
    """An open warm source."""

    @property
    def description(self) -> str:
        """What the source reads, for reports (``jsonl seeds/products.jsonl``); no secrets."""

    def rows(self) -> Iterator[tuple[Position, Row | BadRow]]:
        """Every row in order, each with its position (line number, row number…)."""

    def locate(self, position: Position) -> str:
        """The row at ``position`` as an operator finds it: ``products.jsonl:12``, ``row 7``."""

    def estimated_rows(self) -> int | None:
        """How many rows there are, if cheaply known (for progress ETA); None otherwise."""


SourceFactory = Callable[[Mapping[str, Any], SourceContext], Source]


def _builtin_factory(kind: str) -> SourceFactory:
    module = importlib.import_module(BUILTIN_SOURCES[kind])
    factory: SourceFactory = module.open_source
    return factory


def plugin_factories() -> dict[str, Any]:
    """Entry points of the ``cachectl.sources`` group, by type name (not yet loaded)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_types() -> tuple[str, ...]:
    return tuple(BUILTIN_SOURCES) + tuple(t for t in sorted(plugin_factories())
                                          if t not in BUILTIN_SOURCES)


def source_factory(kind: str) -> SourceFactory:
    """The factory for source type ``kind``: built in, else from an installed plugin."""
    if kind in BUILTIN_SOURCES:
        return _builtin_factory(kind)
    plugins = plugin_factories()
    entry = plugins.get(kind)
    if entry is None:
        raise SourceError(
            f"unknown warm source type {kind!r}",
            hint=did_you_mean(kind, known_types()) or f"known types: {', '.join(known_types())}; "
            f"plugins register more through the {ENTRY_POINT_GROUP!r} entry-point group")
    try:
        loaded = entry.load()
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not crash cachectl
        raise SourceError(f"the {kind!r} source plugin ({entry.value}) failed to load: "
                          f"{type(exc).__name__}: {exc}") from None
    if not callable(loaded):
        raise SourceError(f"the {kind!r} source plugin ({entry.value}) is not callable",
                          hint="the entry point must name a factory (options, context) -> Source")
    factory: SourceFactory = loaded
    return factory


def open_source(kind: str, options: Mapping[str, Any], context: SourceContext) -> Source:
    """Open a source of type ``kind``; SourceError when its options are wrong.

    A plugin's own exceptions (a bug in it, a library it uses failing) become SourceError
    naming the plugin, so they are not reported as a bug in cachectl.
    """
    factory = source_factory(kind)
    if kind in BUILTIN_SOURCES:
        return factory(options, context)
    try:
        return _PluginSource(kind, factory(options, context))
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - the plugin's failure, reported as such
        raise SourceError(f"the {kind!r} source plugin failed: {type(exc).__name__}: {exc}",
                          hint="a problem in the plugin or its source, not in cachectl") from None


class _PluginSource:
    """A plugin's source, with its exceptions turned into SourceError."""

    def __init__(self, kind: str, inner: Source) -> None:
        self.kind = kind
        self.inner = inner

    @property
    def description(self) -> str:
        return self.inner.description

    def _failed(self, exc: Exception) -> SourceError:
        return SourceError(f"the {self.kind!r} source plugin failed: {type(exc).__name__}: {exc}",
                           hint="a problem in the plugin or its source, not in cachectl")

    def rows(self) -> Iterator[tuple[Position, Row | BadRow]]:
        try:
            yield from self.inner.rows()
        except (SourceError, ReadInterrupted):
            raise
        except Exception as exc:  # noqa: BLE001 - see open_source
            raise self._failed(exc) from None

    def locate(self, position: Position) -> str:
        return self.inner.locate(position)

    def estimated_rows(self) -> int | None:
        try:
            return self.inner.estimated_rows()
        except Exception:  # noqa: BLE001 - an estimate is optional
            return None

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    @property
    def interrupt(self) -> Callable[[], None] | None:
        """The plugin's ``interrupt`` if it has one (warm looks for a callable)."""
        interrupt = getattr(self.inner, "interrupt", None)
        return interrupt if callable(interrupt) else None


# --------------------------------------------------------------------------- helpers for readers


def check_options(kind: str, namespace: str, options: Mapping[str, Any],
                  required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """SourceError for a missing required option or an unknown one (with a did-you-mean)."""
    for name in required:
        if options.get(name) in (None, ""):
            raise SourceError(f"namespace {namespace}: a {kind} source needs {name!r}",
                              hint=f"allowed options: {', '.join(required + optional)}")
    allowed = set(required) | set(optional)
    for name in options:
        if name not in allowed:
            raise SourceError(
                f"namespace {namespace}: unknown option {name!r} for a {kind} source",
                hint=did_you_mean(name, allowed) or f"allowed: {', '.join(required + optional)}")


def option(options: Mapping[str, Any], name: str, kinds: type | tuple[type, ...],
           namespace: str, kind: str, default: Any = None) -> Any:
    """The option ``name`` if it has one of ``kinds``; SourceError naming what was expected."""
    value = options.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
        raise SourceError(f"namespace {namespace}: {kind} option {name!r} must be {names}, "
                          f"got {value!r}")
    return value


def positive_number(options: Mapping[str, Any], name: str, namespace: str, kind: str,
                    default: float) -> float:
    """The option ``name``: a finite number above 0 (seconds, a rate); SourceError otherwise."""
    value = option(options, name, (int, float), namespace, kind, default)
    if not math.isfinite(value) or value <= 0:
        raise SourceError(f"namespace {namespace}: {kind} option {name!r} must be a number "
                          f"above 0, got {value!r}")
    return float(value)


def loads_json(data: str | bytes) -> Any:
    """``json.loads``, with a document nested too deeply for the parser a ValueError like
    any other malformed one (the parser's RecursionError is not a bug in cachectl)."""
    try:
        return _json_loads(data)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


def resolve_path(raw: str, context: SourceContext) -> Path:
    """A source path: absolute, or relative to the policy file's folder."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else context.base_dir / path


def open_binary(path: Path, display: str) -> IO[bytes]:
    """Open a source file for reading (``.gz`` decompressed on the fly); SourceError otherwise."""
    try:
        if path.name.endswith(".gz"):
            return open_regular(path, gz=True)
        # a large buffer: with the default 8 KiB, reading lines costs twice as much CPU
        return open_regular(path, buffering=READ_BUFFER)
    except FileNotFoundError:
        raise SourceError(f"warm source {display} does not exist",
                          hint="relative paths start at the policy file's folder") from None
    except IsADirectoryError:
        raise SourceError(f"warm source {display} is a folder, not a file") from None
    except OSError as exc:
        raise SourceError(f"cannot open warm source {display}: {exc.strerror or exc}") from None


class FileSource:
    """What the file sources (jsonl, csv, json) share: the ``path`` option, resolved
    against the policy's folder and opened at once (a missing file fails before any
    write), its name as shown, and ``file:position`` locators."""

    kind = "file"

    def __init__(self, raw: str, context: SourceContext) -> None:
        self.display = raw
        self.path = resolve_path(raw, context)
        self._fh = open_binary(self.path, raw)

    def close(self) -> None:
        self._fh.close()

    @property
    def description(self) -> str:
        return f"{self.kind} {self.display}"

    def locate(self, position: Position) -> str:
        return f"{self.display}:{position}"


def read_failure(display: str, exc: BaseException) -> SourceError:
    """The SourceError for a file that stopped being readable mid-way (deleted, truncated)."""
    if isinstance(exc, gzip.BadGzipFile | EOFError):
        return SourceError(f"warm source {display} is not a valid gzip file ({exc})",
                           hint="a truncated .gz ends early; regenerate or recompress it")
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return SourceError(f"cannot read warm source {display}: {text}",
                       hint="what was written so far is complete; fix the source and rerun")


def count_lines(path: Path, limit_bytes: int = 1 << 30, exact_bytes: int = 64 << 20) -> int | None:
    """Lines in a plain file, for the progress ETA: counted in a file up to ``exact_bytes``,
    estimated from its first ``exact_bytes // 8`` bytes beyond that (counting a big file
    costs a read of all of it before the first row); None for .gz or over ``limit_bytes``."""
    if path.name.endswith(".gz"):
        return None
    try:
        size = path.stat().st_size
        if size > limit_bytes:
            return None
        if size > exact_bytes:
            with path.open("rb") as fh:
                sample = fh.read(exact_bytes // 8)
            newlines = sample.count(b"\n")
            return max(1, round(newlines * size / len(sample))) if newlines else None
        lines = 0
        last = b"\n"
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        return lines + (0 if last == b"\n" else 1)
    except OSError:
        return None
