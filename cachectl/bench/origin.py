"""The origin a namespace's cache protects, as far as bench can time it: its warm source.

File sources (jsonl, json, csv) are read by a small reader here. Timing "load one
row from the origin" opens the source and reads until the row whose key matches,
which is what a loader without the cache would do for that file. Other source types
(sql, http, plugins) are reported as not timed, with the reason.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachectl.bench.histogram import LatencyHistogram
from cachectl.errors import SourceError
from cachectl.policy.model import Namespace
from cachectl.policy.template import KeyParamError

FILE_TYPES = ("jsonl", "json", "csv")


@dataclass(frozen=True)
class OriginSource:
    """A file warm source bench can read: its type, resolved path and options."""

    type: str
    path: Path
    items: str | None = None  # json: the field holding the list of rows

    @property
    def display(self) -> str:
        return f"{self.type} {self.path}"


def origin_source(ns: Namespace, base_dir: Path) -> OriginSource | str:
    """The namespace's timeable origin, or the reason it has none."""
    if ns.warm is None:
        return "no warm source in the policy"
    spec = ns.warm.source
    if spec.type not in FILE_TYPES:
        return f"{spec.type} sources are not timed yet (file sources only: jsonl, json, csv)"
    opts = spec.options
    raw = opts.get("path")
    if not isinstance(raw, str):
        return f"the {spec.type} source has no path"
    path = Path(raw)
    if not path.is_absolute():
        path = base_dir / path
    items = opts.get("items")
    return OriginSource(spec.type, path, items if isinstance(items, str) else None)


def iter_rows(source: OriginSource) -> Iterator[dict[str, Any]]:
    """Stream the source's rows (dicts); SourceError if the file cannot be read."""
    try:
        with source.path.open(encoding="utf-8", newline="") as fh:
            if source.type == "jsonl":
                for line in fh:
                    if line.strip():
                        row = json.loads(line)
                        if isinstance(row, dict):
                            yield row
            elif source.type == "csv":
                yield from csv.DictReader(fh)
            else:
                doc = json.load(fh)
                if source.items and isinstance(doc, dict):
                    doc = doc.get(source.items, [])
                if isinstance(doc, dict):
                    doc = list(doc.values())
                yield from (r for r in doc if isinstance(r, dict))
    except OSError as exc:
        raise SourceError(f"cannot read {source.display}: {exc.strerror or exc}",
                          hint="check the warm source's path in the policy") from None
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"cannot parse {source.display}: {exc}") from None


def key_params(ns: Namespace, row: Mapping[str, Any]) -> dict[str, object] | None:
    """The row's placeholder values, or None when it cannot fill the template."""
    params: dict[str, object] = {}
    for name in ns.template.placeholders:
        if name not in row:
            return None
        params[name] = row[name]
    try:
        ns.template.render(params)
    except KeyParamError:
        return None
    return params


def row_value(ns: Namespace, row: Mapping[str, Any]) -> bytes:
    """The payload the cache would hold for ``row`` (the warm spec's value field, or the row)."""
    value: Any = row
    if ns.warm is not None and ns.warm.value:
        value = row.get(ns.warm.value)
    if ns.warm is not None and ns.warm.encoding == "raw" and isinstance(value, str | bytes):
        return value if isinstance(value, bytes) else value.encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def source_rows(ns: Namespace, source: OriginSource, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` rows that fill the namespace's template."""
    rows = []
    for row in iter_rows(source):
        if key_params(ns, row) is not None:
            rows.append(row)
            if len(rows) >= limit:
                break
    return rows


def fetch_row(ns: Namespace, source: OriginSource, key: str) -> dict[str, Any] | None:
    """Load one row the way a cache-less loader would: read the source until it is found."""
    for row in iter_rows(source):
        params = key_params(ns, row)
        if params is not None and ns.template.render(params) == key:
            return row
    return None


def time_origin(ns: Namespace, source: OriginSource, rows: Sequence[Mapping[str, Any]],
                samples: int, budget_ns: int | None = None) -> tuple[LatencyHistogram, int]:
    """Time up to ``samples`` row loads (cycling over ``rows``), within ``budget_ns``.

    Returns the histogram and how many rows were not found again.
    """
    hist = LatencyHistogram()
    missing = 0
    if not rows:
        return hist, 0
    clock = time.perf_counter_ns
    stop_at = clock() + budget_ns if budget_ns is not None else None
    for i in range(samples):
        if stop_at is not None and i > 0 and clock() >= stop_at:
            break
        params = key_params(ns, rows[i % len(rows)])
        assert params is not None
        key = ns.template.render(params)
        t0 = clock()
        found = fetch_row(ns, source, key)
        hist.record(clock() - t0)
        if found is None:
            missing += 1
    return hist, missing
