"""What a survey returns (per-namespace tallies, shapes, big keys, per-node figures) and
the accumulator that merges the server's batches into it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions as rex

from cachectl.compression import MAGIC as FRAME_MAGIC
from cachectl.connection import node_name
from cachectl.freshness import ttl_bounds_ms
from cachectl.keyspace.matcher import NamespaceMatcher, key_shape
from cachectl.keyspace.survey_lua import HIST_BASE
from cachectl.policy.model import Namespace

UNMATCHED = "(unmatched)"

@dataclass
class _NsAcc:
    seen: int = 0
    keys: int = 0
    memory: int = 0
    memory_sq: int = 0
    no_ttl: int = 0
    fresh: int = 0
    stale: int = 0
    fail_safe: int = 0
    too_long: int = 0
    oversize: int = 0
    ttl_min: int = -1
    ttl_max: int = -1
    hist: dict[int, int] = field(default_factory=dict)
    ex_no_ttl: list[bytes] = field(default_factory=list)
    ex_too_long: list[tuple[bytes, int]] = field(default_factory=list)
    ex_oversize: list[tuple[bytes, int]] = field(default_factory=list)
    framed: int = 0


@dataclass
class ShapeAccumulator:
    seen: int = 0
    keys: int = 0
    memory: int = 0
    memory_sq: int = 0
    example: bytes = b""


@dataclass(frozen=True)
class NamespaceTally:
    """A namespace's totals from a survey (measured keys only, except ``seen``).

    ``ttl_histogram`` maps bucket b to how many keys have ``HIST_BASE**b <= PTTL <
    HIST_BASE**(b+1)``; examples are (key, figure) pairs: PTTL ms or value bytes.
    """

    name: str
    seen: int
    keys: int
    memory_bytes: int
    memory_sq: int
    no_ttl: int
    fresh: int
    stale: int
    fail_safe: int
    ttl_too_long: int
    oversize: int
    ttl_min_ms: int | None
    ttl_max_ms: int | None
    ttl_histogram: tuple[tuple[int, int], ...]
    examples_no_ttl: tuple[bytes, ...]
    examples_ttl_too_long: tuple[tuple[bytes, int], ...]
    examples_oversize: tuple[tuple[bytes, int], ...]
    # the namespace compresses: ``framed`` counts its measured values stored as frames
    compresses: bool = False
    framed: int = 0

    def ttl_median_ms(self) -> int | None:
        """The median PTTL of keys that expire, to within half a histogram bucket."""
        total = sum(c for _, c in self.ttl_histogram)
        if total == 0 or self.ttl_min_ms is None or self.ttl_max_ms is None:
            return None
        rank = (total + 1) / 2
        running = 0
        for bucket, count in sorted(self.ttl_histogram):
            running += count
            if running >= rank:
                mid: int = round(HIST_BASE ** (bucket + 0.5))
                return min(max(mid, self.ttl_min_ms), self.ttl_max_ms)
        return self.ttl_max_ms


@dataclass(frozen=True)
class ShapeTally:
    """Keys that match no namespace, grouped by their shape (``order:*:items``)."""

    pattern: str
    seen: int
    keys: int
    memory_bytes: int
    memory_sq: int
    example: bytes


@dataclass(frozen=True)
class BigKey:
    key: bytes
    memory_bytes: int
    namespace: str | None


@dataclass(frozen=True)
class NodeTally:
    """One namespace (or the unmatched keys) on one primary: keys read from SCAN
    (``seen``), keys measured and their memory (MEMORY USAGE summed)."""

    name: str
    seen: int
    keys: int
    memory_bytes: int


@dataclass(frozen=True)
class NodeFigures:
    """One primary: its key count (DBSIZE) and used memory at the start of the survey,
    how many keys the survey read there, and its tallies per namespace (policy order,
    namespaces it holds none of included) and for the unmatched keys. ``started_s``: when
    the survey of this node began, in seconds after the survey's start; ``elapsed_s``: how
    long it took (the primaries of a cluster are surveyed at the same time)."""

    node: str
    keys: int
    used_memory_bytes: int
    scanned: int = 0
    namespaces: tuple[NodeTally, ...] = ()
    unmatched: NodeTally | None = None
    started_s: float = 0.0
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class KeyspaceSurvey:
    """The whole keyspace aggregated per namespace (see ``survey_keyspace``).

    ``sampled``: False when every key was measured. ``scanned`` keys were read from
    SCAN and attributed; ``measured`` had MEMORY USAGE and PTTL taken; ``gone`` expired
    between the two; ``denied`` were refused by an ACL. ``total_keys`` is DBSIZE summed
    over the primaries at the start.
    """

    namespaces: tuple[NamespaceTally, ...]
    unmatched: tuple[ShapeTally, ...]
    biggest: tuple[BigKey, ...]
    sampled: bool
    scanned: int
    measured: int
    gone: int
    denied: int
    internal_keys: int
    internal_bytes: int
    total_keys: int
    used_memory_bytes: int
    nodes: tuple[NodeFigures, ...]
    elapsed_s: float
    method: str  # "lua" or "pipeline"
    live_keys: float = 0.0  # DBSIZE less the share Redis reports as expired, not yet reclaimed
    # a sample's keys read per stratum (each namespace, unmatched, cachectl's own) by each
    # SCAN call: the spread between calls gives honest margins (see inspect.count_variance)
    runs: tuple[tuple[int, ...], ...] = ()


class SurveyAccumulator:
    """Mutable accumulator; ``freeze()`` returns the KeyspaceSurvey."""

    def __init__(self, namespaces: Sequence[Namespace], top: int, examples: int) -> None:
        self.namespaces = list(namespaces)
        self.acc = [_NsAcc() for _ in self.namespaces]
        self.shapes: dict[str, ShapeAccumulator] = {}
        self.top: list[BigKey] = []
        self.top_n = top
        self.examples = examples
        self.scanned = self.measured = self.gone = self.denied = 0
        self.internal_keys = self.internal_bytes = 0
        # per node: [scanned, then seen, measured, bytes for each namespace and unmatched]
        self.per_node: dict[str, list[int]] = {}
        self.runs: list[tuple[int, ...]] = []  # keys read per stratum, per call

    def _node(self, node: str) -> list[int]:
        tally = self.per_node.get(node)
        if tally is None:
            tally = self.per_node[node] = [0] * (1 + 3 * (len(self.namespaces) + 1))
        return tally

    def merge_lua(self, node: str, counters: list[int], ns_recs: list[Any],
                  shape_recs: list[Any], top: list[Any]) -> list[int]:
        """Add one script reply from ``node``; return the keys it read per stratum
        (each namespace, then the unmatched keys, then cachectl's own)."""
        scanned, measured, gone, denied, iseen, imem = counters[:6]
        per_node = self._node(node)
        per_node[0] += scanned
        strata = [0] * (len(self.namespaces) + 2)
        strata[-1] = iseen
        self.scanned += scanned
        self.measured += measured
        self.gone += gone
        self.denied += denied
        self.internal_keys += iseen
        self.internal_bytes += imem
        for rec in ns_recs:
            i = int(rec[0]) - 1
            strata[i] = rec[1]
            per_node[1 + 3 * i] += rec[1]
            per_node[2 + 3 * i] += rec[2]
            per_node[3 + 3 * i] += rec[3]
            a = self.acc[i]
            a.seen += rec[1]
            a.keys += rec[2]
            a.memory += rec[3]
            a.memory_sq += int(rec[4])
            a.no_ttl += rec[5]
            a.fresh += rec[6]
            a.stale += rec[7]
            a.fail_safe += rec[8]
            a.too_long += rec[9]
            a.oversize += rec[10]
            self._ttl_range(a, rec[11], rec[12])
            hist = rec[13]
            for j in range(0, len(hist), 2):
                a.hist[hist[j]] = a.hist.get(hist[j], 0) + hist[j + 1]
            room = self.examples - len(a.ex_no_ttl)
            a.ex_no_ttl.extend(rec[14][:max(room, 0)])
            self._pairs(a.ex_too_long, rec[15])
            self._pairs(a.ex_oversize, rec[16])
            a.framed += rec[17]
        u = 3 * len(self.namespaces)
        for rec in shape_recs:
            strata[-2] += rec[1]
            per_node[1 + u] += rec[1]
            per_node[2 + u] += rec[2]
            per_node[3 + u] += rec[3]
            self._shape(rec[0].decode("utf-8", "backslashreplace"), rec[1], rec[2], rec[3],
                        int(rec[4]), rec[5])
        for j in range(0, len(top), 3):
            idx = int(top[j + 2])
            name = self.namespaces[idx - 1].name if idx > 0 else None
            self._big(BigKey(top[j], int(top[j + 1]), name))
        self.runs.append(tuple(strata))
        return strata

    def absorb(self, other: SurveyAccumulator) -> None:
        """Add what ``other`` (another node's accumulator, same namespaces) gathered.

        Absorbing the nodes' accumulators in node order gives what one accumulator fed
        the nodes one after the other would hold: the same sums and the same examples.
        """
        for a, b in zip(self.acc, other.acc, strict=True):
            a.seen += b.seen
            a.keys += b.keys
            a.memory += b.memory
            a.memory_sq += b.memory_sq
            a.no_ttl += b.no_ttl
            a.fresh += b.fresh
            a.stale += b.stale
            a.fail_safe += b.fail_safe
            a.too_long += b.too_long
            a.oversize += b.oversize
            a.framed += b.framed
            self._ttl_range(a, b.ttl_min, b.ttl_max)
            for bucket, count in b.hist.items():
                a.hist[bucket] = a.hist.get(bucket, 0) + count
            a.ex_no_ttl.extend(b.ex_no_ttl[:max(self.examples - len(a.ex_no_ttl), 0)])
            a.ex_too_long.extend(b.ex_too_long[:max(self.examples - len(a.ex_too_long), 0)])
            a.ex_oversize.extend(b.ex_oversize[:max(self.examples - len(a.ex_oversize), 0)])
        for pattern, s in other.shapes.items():
            self._shape(pattern, s.seen, s.keys, s.memory, s.memory_sq, s.example)
        for big in other.top:
            self._big(big)
        self.scanned += other.scanned
        self.measured += other.measured
        self.gone += other.gone
        self.denied += other.denied
        self.internal_keys += other.internal_keys
        self.internal_bytes += other.internal_bytes
        for node, tally in other.per_node.items():
            into = self._node(node)
            for j, value in enumerate(tally):
                into[j] += value
        self.runs.extend(other.runs)

    def _ttl_range(self, a: _NsAcc, low: int, high: int) -> None:
        if low >= 0 and (a.ttl_min < 0 or low < a.ttl_min):
            a.ttl_min = low
        if high > a.ttl_max:
            a.ttl_max = high

    def _pairs(self, into: list[tuple[bytes, int]], flat: list[Any]) -> None:
        for j in range(0, len(flat), 2):
            if len(into) < self.examples:
                into.append((flat[j], int(flat[j + 1])))

    def _shape(self, pattern: str, seen: int, keys: int, mem: int, mem_sq: int,
               example: bytes) -> None:
        s = self.shapes.get(pattern)
        if s is None:
            s = self.shapes[pattern] = ShapeAccumulator(example=example)
        s.seen += seen
        s.keys += keys
        s.memory += mem
        s.memory_sq += mem_sq

    def _big(self, big: BigKey) -> None:
        if self.top_n <= 0:
            return
        self.top.append(big)
        if len(self.top) > 4 * self.top_n:
            self._trim()

    def _node_figures(self, figures: NodeFigures) -> NodeFigures:
        raw = self.per_node.get(figures.node) or self._node(figures.node)
        tallies = [NodeTally(name, raw[1 + 3 * i], raw[2 + 3 * i], raw[3 + 3 * i])
                   for i, name in enumerate([ns.name for ns in self.namespaces] + [UNMATCHED])]
        return dataclasses.replace(figures, scanned=raw[0], namespaces=tuple(tallies[:-1]),
                                   unmatched=tallies[-1])

    def _trim(self) -> None:
        self.top.sort(key=lambda b: (-b.memory_bytes, b.key))
        del self.top[self.top_n:]

    # the same per-key logic as SURVEY_LUA, for servers that refuse scripts
    def add_python(self, node: Any, keys: list[bytes], stride: int, offset: int,
                   internal: bytes, matcher: NamespaceMatcher, quota: int = 0) -> list[int]:
        """The same as one script call, with pipelined commands; returns keys per stratum."""
        index = {ns.name: i for i, ns in enumerate(self.namespaces)}
        nns = len(self.namespaces)
        name = node_name(node)
        per_node = self._node(name)
        per_node[0] += len(keys)
        strata = [0] * (nns + 2)
        owners: list[int] = []
        chosen: list[int] = []
        for n, key in enumerate(keys):
            self.scanned += 1
            if internal and key.startswith(internal):
                i = -1
                self.internal_keys += 1
            else:
                ns = matcher.namespace_of(key)
                i = index[ns.name] if ns is not None else -2
                if i >= 0:
                    self.acc[i].seen += 1
                else:
                    self._shape(key_shape(key), 1, 0, 0, 0, key)
            owners.append(i)
            st = i if i >= 0 else (nns if i == -2 else nns + 1)
            strata[st] += 1
            if st <= nns:
                per_node[1 + 3 * st] += 1
            if (stride == 1 or (n + 1) % stride == offset) and (
                    quota == 0 or strata[st] <= quota):
                chosen.append(n)
        pipe = node.pipeline(transaction=False)
        for n in chosen:
            pipe.memory_usage(keys[n])
            pipe.pttl(keys[n])
        replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, rex.ConnectionError | rex.TimeoutError):
                raise reply
        heads: list[tuple[int, bytes]] = []
        for j, n in enumerate(chosen):
            mem, pttl = replies[2 * j], replies[2 * j + 1]
            if isinstance(mem, Exception):
                self.denied += 1
                continue
            if mem is None or not isinstance(pttl, int) or pttl == -2:
                self.gone += 1
                continue
            self.measured += 1
            key, i = keys[n], owners[n]
            if i == -1:
                self.internal_bytes += mem
                continue
            st = i if i >= 0 else nns
            per_node[2 + 3 * st] += 1
            per_node[3 + 3 * st] += mem
            if i == -2:
                s = self.shapes[key_shape(key)]
                s.keys += 1
                s.memory += mem
                s.memory_sq += mem * mem
                self._big(BigKey(key, mem, None))
                continue
            self._add_key(node, i, key, mem, pttl)
            if self.namespaces[i].compress is not None:
                heads.append((i, key))
        if heads:  # count compression frames: their first three bytes
            pipe = node.pipeline(transaction=False)
            for _, key in heads:
                pipe.getrange(key, 0, 2)
            for (i, _), head in zip(heads, pipe.execute(raise_on_error=False), strict=True):
                if head == FRAME_MAGIC:
                    self.acc[i].framed += 1
        self.runs.append(tuple(strata))
        return strata

    def _add_key(self, node: Any, i: int, key: bytes, mem: int, pttl: int) -> None:
        ns, a = self.namespaces[i], self.acc[i]
        a.keys += 1
        a.memory += mem
        a.memory_sq += mem * mem
        if pttl == -1:
            a.no_ttl += 1
            if len(a.ex_no_ttl) < self.examples:
                a.ex_no_ttl.append(key)
        else:
            grace = ns.grace_ms
            if pttl > grace:
                a.fresh += 1
            elif pttl > grace - ns.stale_ms:
                a.stale += 1
            elif pttl > 0:
                a.fail_safe += 1
            if pttl > ttl_bounds_ms(ns)[1]:
                a.too_long += 1
                if len(a.ex_too_long) < self.examples:
                    a.ex_too_long.append((key, pttl))
            self._ttl_range(a, pttl, pttl)
            if pttl > 0:
                b = math.floor(math.log(pttl) / math.log(HIST_BASE))
                a.hist[b] = a.hist.get(b, 0) + 1
        limit = ns.max_value_bytes
        if limit and mem > limit:
            size = mem
            if node.type(key) == b"string":
                size = int(node.strlen(key))
            if size > limit:
                a.oversize += 1
                if len(a.ex_oversize) < self.examples:
                    a.ex_oversize.append((key, size))
        self._big(BigKey(key, mem, ns.name))

    def freeze(self, *, sampled: bool, total_keys: int, used_memory: int,
               nodes: tuple[NodeFigures, ...],
               elapsed_s: float, method: str, live_keys: float) -> KeyspaceSurvey:
        self._trim()
        tallies = []
        for ns, a in zip(self.namespaces, self.acc, strict=True):
            tallies.append(NamespaceTally(
                name=ns.name, seen=a.seen, keys=a.keys, memory_bytes=a.memory,
                memory_sq=a.memory_sq, no_ttl=a.no_ttl, fresh=a.fresh, stale=a.stale,
                fail_safe=a.fail_safe, ttl_too_long=a.too_long, oversize=a.oversize,
                ttl_min_ms=a.ttl_min if a.ttl_min >= 0 else None,
                ttl_max_ms=a.ttl_max if a.ttl_max >= 0 else None,
                ttl_histogram=tuple(sorted(a.hist.items())),
                examples_no_ttl=tuple(a.ex_no_ttl), examples_ttl_too_long=tuple(a.ex_too_long),
                examples_oversize=tuple(a.ex_oversize), compresses=ns.compress is not None,
                framed=a.framed))
        shapes = [ShapeTally(p, s.seen, s.keys, s.memory, s.memory_sq, s.example)
                  for p, s in collapse_shapes(self.shapes).items()]
        shapes.sort(key=lambda s: (-s.memory_bytes, -s.seen, s.pattern))
        nodes = tuple(self._node_figures(f) for f in nodes)
        return KeyspaceSurvey(
            namespaces=tuple(tallies), unmatched=tuple(shapes), biggest=tuple(self.top),
            sampled=sampled, scanned=self.scanned, measured=self.measured, gone=self.gone,
            denied=self.denied, internal_keys=self.internal_keys,
            internal_bytes=self.internal_bytes, total_keys=total_keys,
            used_memory_bytes=used_memory, nodes=nodes, elapsed_s=elapsed_s, method=method,
            live_keys=live_keys, runs=tuple(self.runs) if sampled else ())


COLLAPSE_DISTINCT = 8  # more distinct words than this in one position: it is a variable


def collapse_shapes(shapes: dict[str, ShapeAccumulator]) -> dict[str, ShapeAccumulator]:
    """Merge shapes that differ in one position with many distinct words (``user:alice``,
    ``user:bob``, … -> ``user:*``), position by position from the left."""
    current = dict(shapes)
    width = max((p.count(":") + 1 for p in current), default=0)
    for pos in range(width):
        groups: dict[tuple[int, tuple[str, ...]], set[str]] = {}
        for pattern in current:
            segs = pattern.split(":")
            if pos < len(segs) and segs[pos] != "*":
                rest = (len(segs), tuple(segs[:pos] + segs[pos + 1:]))
                groups.setdefault(rest, set()).add(segs[pos])
        wide = {g for g, words in groups.items() if len(words) > COLLAPSE_DISTINCT}
        if not wide:
            continue
        merged: dict[str, ShapeAccumulator] = {}
        for pattern, acc in current.items():
            segs = pattern.split(":")
            if pos < len(segs) and (len(segs), tuple(segs[:pos] + segs[pos + 1:])) in wide:
                segs[pos] = "*"
            target = ":".join(segs)
            into = merged.get(target)
            if into is None:
                merged[target] = ShapeAccumulator(acc.seen, acc.keys, acc.memory, acc.memory_sq,
                                           acc.example)
            else:
                into.seen += acc.seen
                into.keys += acc.keys
                into.memory += acc.memory
                into.memory_sq += acc.memory_sq
        current = merged
    return current
