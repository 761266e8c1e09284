"""CP4xx rules on warm sources: a known type, a file that exists, rows that fill the key.

Only the first row of a local jsonl/json/csv source is read (json documents are parsed
whole, up to ``JSON_READ_LIMIT``), so linting stays fast however large the seeds are.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from functools import cache
from pathlib import Path
from typing import IO, Any

from cachectl.diagnostics import Code
from cachectl.files import open_regular
from cachectl.lint.context import LintContext
from cachectl.policy.model import did_you_mean
from cachectl.policy.sources import (
    BUILTIN_OPTIONS,
    BUILTIN_TYPES,
    OPTION_BOUNDS,
    PAGINATION_BOUNDS,
    number_problem,
)

FILE_TYPES = ("jsonl", "json", "csv")
ENTRY_POINT_GROUP = "cachectl.sources"
JSON_READ_LIMIT = 16 * 1024 * 1024
FIRST_LINE_LIMIT = 1024 * 1024


@cache
def plugin_types() -> tuple[str, ...]:
    """Source types installed plugins provide (entry points in ``cachectl.sources``)."""
    from importlib.metadata import entry_points

    return tuple(sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}))


def known_types() -> tuple[str, ...]:
    return BUILTIN_TYPES + tuple(t for t in plugin_types() if t not in BUILTIN_TYPES)


class _RowError(Exception):
    """The first row cannot be read; the message says why."""


def check(ctx: LintContext) -> None:
    for name, ns in ctx.namespaces():
        if ns.warm is None:
            continue
        source = ns.warm.source
        where = ("namespaces", name, "warm", "source")
        if source.type not in BUILTIN_TYPES and source.type not in plugin_types():
            ctx.report(Code.UNKNOWN_SOURCE_TYPE,
                       f"namespace {name}: unknown warm source type {source.type!r}",
                       ctx.value(*where, "type"),
                       did_you_mean(source.type, known_types())
                       or f"known types: {', '.join(known_types())}")
            continue
        if not _options_ok(ctx, name, source.type, source.options, where):
            continue
        _check_lookup(ctx, name, source.type, source.options.get("lookup"), where)
        if source.type not in FILE_TYPES:
            continue
        raw_path = source.options.get("path")
        if not isinstance(raw_path, str) or not raw_path:
            ctx.report(Code.WRONG_TYPE, f"namespace {name}: warm source path must be a file name",
                       ctx.value(*where, "path"))
            continue
        if ctx.base_dir is None:
            continue
        path = ctx.base_dir / Path(raw_path).expanduser()
        path_at = ctx.value(*where, "path")
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            ctx.report(Code.WARM_SOURCE_MISSING, f"namespace {name}: warm source {raw_path} {what}", path_at,
                       f"paths are relative to the policy file's folder ({ctx.base_dir})")
            continue
        fields = _placeholders(ctx, name)
        if ns.warm.value is not None:
            fields.append(ns.warm.value)
        if not fields:
            continue
        try:
            row = _first_row(path, source.type, source.options)
        except _RowError as exc:
            ctx.report(Code.WARM_ROW_CANNOT_FILL_TEMPLATE, f"namespace {name}: {raw_path}: {exc}", path_at,
                       "each row must be an object (jsonl/json) or a header + rows (csv)")
            continue
        except OSError as exc:
            ctx.report(Code.WARM_SOURCE_MISSING, f"namespace {name}: warm source {raw_path} cannot be read "
                       f"({exc.strerror or exc})", path_at)
            continue
        if row is None:
            continue  # an empty source fills nothing, and breaks nothing
        missing = [f for f in fields if f not in row]
        if missing:
            ctx.report(Code.WARM_ROW_CANNOT_FILL_TEMPLATE,
                       f"namespace {name}: the first row of {raw_path} has no field "
                       f"{', '.join(repr(m) for m in missing)} (key {ns.key!r})", path_at,
                       f"row fields: {', '.join(map(str, list(row)[:12])) or '(none)'}")


def _options_ok(ctx: LintContext, name: str, kind: str, options: dict[str, Any],
                where: tuple[str | int, ...]) -> bool:
    """CP005/CP003: a built-in reader's required options are there, and no unknown one is."""
    if kind not in BUILTIN_OPTIONS:
        return True  # a plugin checks its own options
    required, optional = BUILTIN_OPTIONS[kind]
    ok = True
    for option in required:
        if options.get(option) in (None, ""):
            ctx.report(Code.MISSING_FIELD, f"namespace {name}: a {kind} source needs {option!r}",
                       ctx.value(*where), f"{kind} options: {', '.join(required + optional)}")
            ok = False
    allowed = required + optional
    bounds = [(option, bound, (*where, option)) for option, bound in
              OPTION_BOUNDS.get(kind, {}).items()]
    pagination = options.get("pagination")
    if kind == "http" and isinstance(pagination, dict):
        bounds += [(f"pagination {option}", bound, (*where, "pagination", option))
                   for option, bound in PAGINATION_BOUNDS.items()]
    for label, bound, path in bounds:
        value = _at(options, path[len(where):])
        problem = None if value is None else number_problem(value, bound)
        if problem:
            ctx.report(Code.INVALID_SOURCE_OPTION,
                       f"namespace {name}: {kind} source {label} {problem}, got {value!r}",
                       ctx.value(*path), "the reader would refuse it when warm runs")
            ok = False
    for option in options:
        if option not in allowed:
            ctx.report(Code.UNKNOWN_FIELD, f"unknown option {option!r} for a {kind} warm source",
                       ctx.key(*where, option),
                       did_you_mean(option, allowed) or f"{kind} options: {', '.join(allowed)}")
            ok = False
    return ok


# ``:name`` bound parameters of a SQL text (not ``::type`` casts), ``{name}`` in a URL template
_SQL_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_URL_PARAM = re.compile(r"\{([^{}]*)\}")


def _check_lookup(ctx: LintContext, name: str, kind: str, lookup: object,
                  where: tuple[str | int, ...]) -> None:
    """CP411: a lookup's parameters are exactly the key template's placeholders (so verify
    can fill them from a key), and none of those is hashed (a digest cannot be looked up)."""
    template = ctx.templates.get(name)
    if not isinstance(lookup, str) or template is None or kind not in ("sql", "http"):
        return
    found = _SQL_PARAM.findall(lookup) if kind == "sql" else _URL_PARAM.findall(lookup)
    params, placeholders = set(found), set(template.placeholders)
    at = ctx.value(*where, "lookup")
    hashed = sorted(seg.placeholder for seg in template.segments
                    if seg.placeholder is not None and seg.modifier is not None)
    form = ":{}" if kind == "sql" else "{{{}}}"
    if params != placeholders:
        missing, extra = sorted(placeholders - params), sorted(params - placeholders)
        parts = ([f"lacks {', '.join(form.format(p) for p in missing)}"] if missing else []) + (
            [f"has {', '.join(form.format(p) for p in extra)}, not a placeholder"] if extra else [])
        ctx.report(Code.LOOKUP_PARAMS_MISMATCH, f"namespace {name}: the {kind} lookup {' and '.join(parts)} "
                   f"(key {template.source!r})", at,
                   f"the lookup takes the key's placeholders: "
                   f"{', '.join(form.format(p) for p in template.placeholders) or '(none)'}")
    elif hashed:
        ctx.report(Code.LOOKUP_PARAMS_MISMATCH, f"namespace {name}: the key stores a digest of "
                   f"{', '.join(hashed)}, which a lookup cannot be given", at,
                   "remove lookup: (verify then reads the source in full)")


def _placeholders(ctx: LintContext, name: str) -> list[str]:
    template = ctx.templates.get(name)
    return list(template.placeholders) if template is not None else []


def _open(path: Path) -> IO[bytes]:
    return open_regular(path, gz=path.name.endswith(".gz"))


def _first_row(path: Path, kind: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """The first row as a mapping of field names, or None for an empty source."""
    try:
        with _open(path) as fh:
            if kind == "jsonl":
                return _first_jsonl(fh)
            if kind == "csv":
                return _first_csv(fh, options)
            return _first_json(fh, options)
    except (gzip.BadGzipFile, EOFError) as exc:
        raise _RowError(f"not a valid gzip file ({exc})") from None
    except UnicodeDecodeError:
        raise _RowError("not UTF-8 text") from None


def _first_jsonl(fh: IO[bytes]) -> dict[str, Any] | None:
    number = 0
    while True:
        line = fh.readline(FIRST_LINE_LIMIT)
        number += 1
        if not line:
            return None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _RowError(f"line {number} is not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise _RowError(f"line {number} is not a JSON object")
        return row


def _first_csv(fh: IO[bytes], options: dict[str, Any]) -> dict[str, Any] | None:
    delimiter = options.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        delimiter = ","
    with io.TextIOWrapper(fh, encoding="utf-8-sig", newline="") as text:
        try:
            header = next(csv.reader(text, delimiter=delimiter))
        except StopIteration:
            return None
        except csv.Error as exc:
            raise _RowError(f"not CSV ({exc})") from None
    return {column.strip(): None for column in header}


def _first_json(fh: IO[bytes], options: dict[str, Any]) -> dict[str, Any] | None:
    data = fh.read(JSON_READ_LIMIT + 1)
    if len(data) > JSON_READ_LIMIT:
        return None  # too large to read cheaply; warm will judge each row
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise _RowError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    items = options.get("items")
    if isinstance(items, str) and items:
        for part in items.split("."):
            if not isinstance(doc, dict) or part not in doc:
                raise _RowError(f"has no {items!r} list (the source's items option)")
            doc = doc[part]
    if isinstance(doc, dict):
        raise _RowError("is a JSON object, not a list of rows; set items: path.to.the.list")
    if not isinstance(doc, list):
        raise _RowError("is not a JSON list of objects")
    if not doc:
        return None
    if not isinstance(doc[0], dict):
        raise _RowError("its first item is not a JSON object")
    return doc[0]


def _at(options: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    value: Any = options
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
