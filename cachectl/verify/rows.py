"""Find the source row of each cached key: by the source's ``lookup`` (one query or
request per key), else by reading the source once and indexing the rows by the key
warm renders for them (files always; SQL, HTTP and plugins without a lookup)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cachectl.errors import KeyParamError
from cachectl.progress import ProgressCallback
from cachectl.warm.loop import key_renderer
from cachectl.warm.model import WarmTarget
from cachectl.warm.sources import FILE_TYPES

Row = dict[str, Any]


class Lookup(Protocol):
    def find(self, params: Mapping[str, str]) -> list[Row]: ...
    def close(self) -> None: ...


@dataclass
class FoundRows:
    """Each wanted key's first source row (warm keeps the first), and what reading cost."""

    rows: dict[bytes, Row]
    access: str  # lookup | indexed | read in full
    not_cached: int | None = None  # rows whose key is not live (read in full, every key live)


def find_rows(target: WarmTarget, keys: Collection[bytes], *, all_live: Collection[bytes] | None,
              progress: ProgressCallback) -> FoundRows:
    """The source row of each key in ``keys``. ``all_live``: every live key of the namespace
    (given with ``--all``), so a full read also counts the rows that are not cached."""
    ns = target.namespace
    opener: Callable[[], Lookup | None] | None = getattr(target.source, "open_lookup", None)
    lookup = opener() if callable(opener) else None
    if lookup is not None:
        try:
            return FoundRows(_by_lookup(target, lookup, keys, progress), "lookup")
        finally:
            lookup.close()
    kind = ns.warm.source.type if ns.warm is not None else ""
    access = "indexed" if kind in FILE_TYPES else "read in full"
    rows, not_cached = _by_index(target, keys, all_live, progress)
    return FoundRows(rows, access, not_cached)


def _by_lookup(target: WarmTarget, lookup: Lookup, keys: Iterable[bytes],
               progress: ProgressCallback) -> dict[bytes, Row]:
    template = target.namespace.template
    render = key_renderer(template)
    found: dict[bytes, Row] = {}
    task = f"{target.namespace.name}: lookups"
    for done, key in enumerate(keys, 1):
        params = template.match(key)
        if params is not None:
            for row in lookup.find(params):
                if _key_of(render, row) == key:  # the row renders this very key
                    found[key] = row
                    break
        if done % 100 == 0:
            progress(task, done)
    return found


def _by_index(target: WarmTarget, keys: Collection[bytes], all_live: Collection[bytes] | None,
              progress: ProgressCallback) -> tuple[dict[bytes, Row], int | None]:
    render = key_renderer(target.namespace.template)
    wanted = set(keys)
    live = set(all_live) if all_live is not None else None
    found: dict[bytes, Row] = {}
    seen: set[bytes] = set()
    not_cached = 0
    task = f"{target.namespace.name}: reading {target.source.description}"
    for done, (_position, row) in enumerate(target.source.rows(), 1):
        if row.__class__ is not dict:
            continue  # a row warm would reject never made a key
        key = _key_of(render, row)
        if key is None or key in seen:
            continue
        seen.add(key)
        if key in wanted:
            found[key] = row
        if live is not None and key not in live:
            not_cached += 1
        if done % 1000 == 0:
            progress(task, done)
    return found, not_cached if live is not None else None


def _key_of(render: Callable[[dict[str, Any]], str], row: Row) -> bytes | None:
    try:
        return render(row).encode("utf-8")
    except KeyParamError:
        return None
