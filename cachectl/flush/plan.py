"""Before a flush: how many keys each target holds (counted, or estimated from a
sample for a large keyspace), and a few examples, changing nothing."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cachectl.fanout import each_node
from cachectl.flush.keys import (
    Selector,
    is_owned,
    primary_nodes,
    sample_filter,
    target_glob,
    target_selector,
)
from cachectl.flush.targets import FlushMode, FlushTarget
from cachectl.freshness import soft_expire_pttl_ms
from cachectl.keyspace import NamespaceMatcher, scan_keys
from cachectl.policy.model import Policy

EXACT_COUNT_LIMIT = 200_000  # keys per deployment; above this, plan_flush estimates
SAMPLE_KEYS = 20_000
EXAMPLES = 5


@dataclass(frozen=True)
class TargetPlan:
    """How many keys a target holds (counted or estimated), and a few of them."""

    target: str
    kind: str
    name: str
    keys: int
    estimated: bool
    examples: tuple[bytes, ...]
    soft_pttl_ms: int | None = None


@dataclass(frozen=True)
class FlushPlan:
    """What a flush would touch, before it touches anything."""

    mode: FlushMode
    targets: tuple[TargetPlan, ...]
    keys: int
    estimated: bool  # counts extrapolated from a SCAN sample (huge keyspaces)
    sampled_keys: int  # keys the estimate looked at (0 when counted exactly)
    dbsize: int  # keys on every primary together


def plan_flush(
    client: Any,
    policy: Policy,
    targets: Sequence[FlushTarget],
    *,
    soft: bool = False,
    examples: int = EXAMPLES,
    exact_limit: int = EXACT_COUNT_LIMIT,
    sample_keys: int = SAMPLE_KEYS,
) -> FlushPlan:
    """Count each target's keys and pick a few examples, changing nothing.

    Exact (a full SCAN per target) when every primary together holds at most
    ``exact_limit`` keys; otherwise estimated: the first ``sample_keys`` keys of an
    unfiltered SCAN (which visits hash buckets spread over the whole table) are
    classified, and each target's share is scaled to DBSIZE.
    """
    nodes = primary_nodes(client)
    # the primaries of a cluster are counted at the same time, a thread each; their
    # counts and examples are added up in node order, as a walk of one after the other
    sizes = each_node(nodes, lambda _, n: int(n.dbsize()))
    dbsize = sum(sizes)
    matcher = NamespaceMatcher.from_policy(policy)
    mode = FlushMode.SOFT if soft else FlushMode.HARD
    estimate = dbsize > exact_limit
    counts = {t: 0 for t in targets}
    found: dict[FlushTarget, list[bytes]] = {t: [] for t in targets}
    sampled = 0
    key_targets = [t for t in targets if t.kind == "key"]
    for t in key_targets:
        assert t.key is not None
        if is_owned(policy, matcher, t, t.key) and client.exists(t.key):
            counts[t] = 1
            found[t].append(t.key)
    scan_targets = [t for t in targets if t.kind != "key"]
    if estimate and scan_targets:
        tests = {t: sample_filter(policy, t) for t in scan_targets}
        per_node = max(1, sample_keys // max(1, len(nodes)))
        samples = each_node(nodes, lambda _, n: _sample_node(n, tests, per_node, examples))
        for size, (seen_here, exhaustive, hits, kept) in zip(sizes, samples, strict=True):
            sampled += seen_here
            for t in scan_targets:
                counts[t] += hits[t] if exhaustive or seen_here == 0 else round(
                    hits[t] * size / seen_here)
                found[t].extend(kept[t][:examples - len(found[t])])
    else:
        for t in scan_targets:
            select = target_selector(policy, t)
            glob = target_glob(policy, t)
            count_node = functools.partial(_count_node, select=select, glob=glob,
                                           examples=examples)
            for n, kept_here in each_node(nodes, count_node):
                counts[t] += n
                found[t].extend(kept_here[:examples - len(found[t])])
    plans = tuple(
        TargetPlan(t.label, t.kind, t.name, counts[t], estimate and t.kind != "key",
                   tuple(found[t][:examples]),
                   soft_expire_pttl_ms(policy.namespace(t.name)) if soft else None)
        for t in targets)
    return FlushPlan(mode, plans, sum(p.keys for p in plans),
                     any(p.estimated for p in plans), sampled if estimate else 0, dbsize)


def _sample_node(node: Any, tests: dict[FlushTarget, Callable[[list[bytes]], list[bytes]]],
                 per_node: int, examples: int
                 ) -> tuple[int, bool, dict[FlushTarget, int], dict[FlushTarget, list[bytes]]]:
    """One primary's sample: (keys read, whether that was all of them, hits per target,
    each target's first examples)."""
    seen_here = 0
    hits = dict.fromkeys(tests, 0)
    kept: dict[FlushTarget, list[bytes]] = {t: [] for t in tests}
    cursor = 0
    while seen_here < per_node:
        cursor, keys = node.scan(cursor=cursor, count=1000)
        seen_here += len(keys)
        for t, test in tests.items():
            mine = test(keys)
            hits[t] += len(mine)
            kept[t].extend(mine[:examples - len(kept[t])])
        if cursor == 0:
            break
    return seen_here, cursor == 0, hits, kept


def _count_node(_: int, node: Any, *, select: Selector, glob: str,
                examples: int) -> tuple[int, list[bytes]]:
    """One target's keys on one primary, counted by a full SCAN: (count, first examples)."""
    count = 0
    kept: list[bytes] = []
    for _node, keys in scan_keys(node, glob, count=1000):
        mine = select(keys)[0]
        count += len(mine)
        kept.extend(mine[:examples - len(kept)])
    return count, kept
