"""The origin a namespace's cache protects, as bench can time it: its warm source.

Sources are opened through the warm source registry (``cachectl.warm.sources``), so
every type warm reads (jsonl, json, csv, sql, http, plugins) can be timed. "Loading
one row from the origin" reopens the source and reads until the row whose key
matches: what a loader without the cache would do against that source. A source that
cannot be opened is reported as not timed, with the reason; it does not stop the
benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cachectl.bench.histogram import LatencyHistogram
from cachectl.errors import SourceError
from cachectl.policy.model import Namespace
from cachectl.policy.template import KeyParamError


@dataclass(frozen=True)
class OriginSource:
    """A namespace's warm source, ready to be reopened for each timed load."""

    namespace: str
    type: str
    options: Mapping[str, Any]
    base_dir: Path
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    description: str = ""

    @property
    def display(self) -> str:
        return self.description or self.type

    def open(self) -> Any:
        from cachectl.warm.sources import SourceContext, open_source

        return open_source(self.type, self.options,
                           SourceContext(self.namespace, self.base_dir, self.env))


def origin_source(ns: Namespace, base_dir: Path,
                  env: Mapping[str, str] | None = None) -> OriginSource | str:
    """The namespace's origin, or the reason it cannot be timed."""
    if ns.warm is None:
        return "no warm source in the policy"
    spec = ns.warm.source
    source = OriginSource(ns.name, spec.type, spec.options, base_dir, dict(env or {}))
    try:
        opened = source.open()
        # read one row, then close: sources open their file or query when created and
        # release it when their row iterator ends
        rows = opened.rows()
        try:
            next(rows, None)
        finally:
            rows.close()
    except SourceError as exc:
        return f"the {spec.type} source cannot be opened: {exc.message}"
    return OriginSource(ns.name, spec.type, spec.options, base_dir, dict(env or {}),
                        str(opened.description))


def iter_rows(source: OriginSource) -> Iterator[dict[str, Any]]:
    """Stream the source's readable rows (dicts); SourceError if it cannot be read."""
    from cachectl.warm.sources import BadRow

    rows = source.open().rows()
    try:
        for _, row in rows:
            if not isinstance(row, BadRow):
                yield row
    finally:
        rows.close()


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
    """The payload warm would store for ``row`` (the warm spec's value field, or the row)."""
    from cachectl.warm import encode_value

    value: Any = row
    if ns.warm is not None and ns.warm.value:
        value = row.get(ns.warm.value)
    if ns.warm is not None and ns.warm.encoding == "raw" and isinstance(value, str | bytes):
        return value if isinstance(value, bytes) else value.encode()
    return encode_value(value)


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
