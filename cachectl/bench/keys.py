"""The benchmark's keys: a dedicated range per namespace, loaded with a TTL and removed after.

Generated keys live under ``<internal_prefix>:bench:<namespace>:`` followed by the
namespace's template rendered without the key prefix, e.g.
``shop:cachectl:bench:product:product:b42``. ``bench_keys`` refuses a key that any
namespace of the policy would claim, so a benchmark never reads or overwrites
application data. ``sample_existing`` only reads (SCAN, TYPE, STRLEN, MEMORY USAGE).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cachectl.errors import UsageError
from cachectl.freshness import write_ttl_ms
from cachectl.keyspace import NamespaceMatcher, scan_namespace
from cachectl.policy.model import Namespace, Policy
from cachectl.policy.template import KeyParamError, KeyTemplate
from cachectl.progress import ProgressCallback, no_progress

DEFAULT_VALUE_BYTES = 512
VALUE_SAMPLE_KEYS = 20
_SAMPLE_SCAN_BATCHES = 50
_LOAD_BATCH = 1000

# what an --existing read sends for each Redis type (reads only)
READ_COMMANDS: dict[bytes, tuple[bytes, ...]] = {
    b"string": (b"GET",),
    b"hash": (b"HGETALL",),
    b"list": (b"LRANGE", b"0", b"-1"),
    b"set": (b"SMEMBERS",),
    b"zset": (b"ZRANGE", b"0", b"-1"),
    b"stream": (b"XRANGE", b"-", b"+", b"COUNT", b"10"),
}


def bench_prefix(policy: Policy, ns: Namespace) -> str:
    """Where ``ns``'s benchmark keys live: ``<key_prefix>:cachectl:bench:<ns>:``."""
    return f"{policy.internal_prefix}:bench:{ns.name}:"


def bench_keys(policy: Policy, ns: Namespace, rows: Sequence[Mapping[str, object]]) -> list[bytes]:
    """One benchmark key per row of placeholder values; UsageError if one could collide."""
    template = KeyTemplate(ns.template.source)
    prefix = bench_prefix(policy, ns)
    matcher = NamespaceMatcher.from_policy(policy)
    keys = []
    for params in rows:
        try:
            key = (prefix + template.render(params)).encode("utf-8", "surrogateescape")
        except KeyParamError:
            continue
        owner = matcher.namespace_of(key)
        if owner is not None:
            raise UsageError(
                f"benchmark key {key.decode(errors='replace')!r} would belong to namespace "
                f"{owner.name!r}; refusing to risk application data",
                hint=f"namespace {owner.name!r} has a template that claims cachectl's own "
                "prefix; give it a literal first segment")
        keys.append(key)
    return keys


def synthetic_rows(ns: Namespace, count: int) -> list[dict[str, str]]:
    """Placeholder values ``b0``, ``b1``, … for ``count`` keys."""
    return [{name: f"b{i}" for name in ns.template.placeholders} for i in range(count)]


@dataclass(frozen=True)
class ValueSizes:
    """The value sizes the benchmark writes, and where they came from."""

    sizes: tuple[int, ...]
    source: str  # "flag", "sampled N keys", "default (no keys to sample)"

    def for_key(self, i: int) -> int:
        return self.sizes[i % len(self.sizes)]


def sample_value_sizes(client: Any, ns: Namespace, limit: int = VALUE_SAMPLE_KEYS) -> ValueSizes:
    """Sizes of a few real keys of ``ns``: STRLEN for strings, MEMORY USAGE otherwise."""
    found = _scan_some(client, ns, limit, _SAMPLE_SCAN_BATCHES)
    if not found:
        return ValueSizes((DEFAULT_VALUE_BYTES,), "default (no keys to sample)")
    sizes = [s for node, keys in found for _, _, s in describe_keys(node, keys) if s]
    if not sizes:
        return ValueSizes((DEFAULT_VALUE_BYTES,), "default (sampled keys vanished)")
    return ValueSizes(tuple(sizes), f"sampled {len(sizes)} keys")


def _scan_some(client: Any, ns: Namespace, limit: int,
               max_batches: int | None = None) -> list[tuple[Any, list[bytes]]]:
    """Up to ``limit`` keys of ``ns``, grouped by the node (client) that holds them."""
    found: list[tuple[Any, list[bytes]]] = []
    total = 0
    for batches, (node, keys) in enumerate(scan_namespace(client, ns), start=1):
        take = keys[: limit - total]
        found.append((node, take))
        total += len(take)
        if total >= limit or (max_batches is not None and batches >= max_batches):
            break
    return found


def describe_keys(client: Any, keys: Sequence[bytes]) -> list[tuple[bytes, bytes, int]]:
    """(key, type, size in bytes) for each key that still exists; reads only."""
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.type(k)
    types = pipe.execute()
    pipe = client.pipeline(transaction=False)
    live = [(k, t if isinstance(t, bytes) else str(t).encode()) for k, t in zip(keys, types,
                                                                                  strict=True)]
    live = [(k, t) for k, t in live if t != b"none"]
    for k, t in live:
        if t == b"string":
            pipe.strlen(k)
        else:
            pipe.execute_command("MEMORY", "USAGE", k)
    sizes = pipe.execute(raise_on_error=False) if live else []
    return [(k, t, s if isinstance(s, int) else 0) for (k, t), s in zip(live, sizes, strict=True)]


def sample_existing(client: Any, ns: Namespace, limit: int) -> list[tuple[bytes, bytes, int]]:
    """Up to ``limit`` real keys of ``ns`` with their type and size; reads only."""
    out: list[tuple[bytes, bytes, int]] = []
    for node, keys in _scan_some(client, ns, limit):
        for start in range(0, len(keys), _LOAD_BATCH):
            out.extend(d for d in describe_keys(node, keys[start:start + _LOAD_BATCH])
                       if d[1] in READ_COMMANDS)
    return out


def make_value(size: int) -> bytes:
    """A JSON string payload of exactly ``size`` bytes (at least 2)."""
    size = max(2, size)
    return b'"' + b"x" * (size - 2) + b'"'


def load_keys(client: Any, ns: Namespace, keys: Sequence[bytes], values: Sequence[bytes], *,
              min_ttl_ms: int, rng: random.Random, on_progress: ProgressCallback = no_progress,
              task: str = "load") -> int:
    """SET every key with its value and a policy TTL (at least ``min_ttl_ms``); the count."""
    written = 0
    for start in range(0, len(keys), _LOAD_BATCH):
        pipe = client.pipeline(transaction=False)
        for k, v in zip(keys[start:start + _LOAD_BATCH], values[start:start + _LOAD_BATCH],
                        strict=True):
            pipe.set(k, v, px=max(write_ttl_ms(ns, rng), min_ttl_ms))
        pipe.execute()
        written = min(len(keys), start + _LOAD_BATCH)
        on_progress(task, written, len(keys))
    return written


def unlink_keys(client: Any, keys: Iterable[bytes], batch: int = 500) -> int:
    """UNLINK the keys in bounded batches; how many existed."""
    removed = 0
    chunk: list[bytes] = []
    for k in keys:
        chunk.append(k)
        if len(chunk) >= batch:
            removed += int(client.unlink(*chunk))
            chunk = []
    if chunk:
        removed += int(client.unlink(*chunk))
    return removed
