"""``survey_keyspace``: the whole keyspace aggregated per namespace, exact or sampled."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis.exceptions as rex

from cachectl.connection import node_name, primaries
from cachectl.fanout import each_node
from cachectl.keyspace.matcher import NamespaceMatcher
from cachectl.keyspace.results import KeyspaceSurvey, NodeFigures, SurveyAccumulator
from cachectl.keyspace.survey_lua import (
    ARG_CURSOR,
    ARG_MAX_KEYS,
    ARG_QUOTA,
    LANE_STARTS,
    LANES,
    SURVEY_LUA,
    survey_args,
)
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Policy
from cachectl.progress import ProgressCallback, no_progress

BATCH_TARGET_S = 0.005  # each server-side call runs about 5 ms, then yields
MIN_BATCH, MAX_BATCH = 100, 5000
INNER_COUNT = 256  # SCAN COUNT per iteration inside a time-budgeted script call
PARALLEL_MIN_KEYS = 10_000  # below this a node is scanned in one lane
SAMPLE_RUN = 2000  # a sample reads runs of about this many keys from random cursors
SHARE_FACTOR = 5  # --sample N classifies SHARE_FACTOR·N keys and measures N of them
IN_FLIGHT = 2  # a sample keeps this many script calls queued, so the server never waits


def _scripting_refused(exc: rex.ResponseError) -> bool:
    text = str(exc)
    return isinstance(exc, rex.NoPermissionError) or any(
        marker in text for marker in ("NOPERM", "unknown command", "not allowed", "disabled"))


def _info(node: Any, section: str) -> dict[str, Any]:
    """One INFO section; empty where INFO is not offered (some proxies, embedded servers)."""
    try:
        return dict(node.info(section))
    except rex.ResponseError as exc:
        if "unknown command" in str(exc).lower():
            return {}
        raise


def stratum_quota(seen: list[int], calls: int, calls_left: int, to_measure: int) -> int:
    """How many keys of each stratum the next call measures (at least 1).

    Water-filling: strata are expected to show up as often as so far (``seen`` over
    ``calls``); the quota q is the smallest that measures ``to_measure`` more keys over
    the remaining calls, a stratum with fewer than q keys per call giving all it has.
    The script measures the first q keys of each stratum it reads (SCAN order is hash
    order, so they are a random subset of the stratum).
    """
    calls_left = max(calls_left, 1)
    if to_measure <= 0:
        return 1
    if calls == 0:
        # nothing seen yet: let a stratum take up to half of this call's share, so a
        # small one is not starved by a quota sized for many (later calls even it out)
        return max(1, math.ceil(to_measure / calls_left / 2))
    per_call = sorted(s / calls for s in seen if s > 0)
    need = to_measure / calls_left
    for j, rate in enumerate(per_call):
        # the strata from j on all give q; those before give their whole rate
        q = (need - sum(per_call[:j])) / (len(per_call) - j)
        if q <= rate:
            return max(1, math.ceil(q))
    return 1 + math.ceil(per_call[-1]) if per_call else 1


def survey_keyspace(
    client: Any,
    policy: Policy,
    *,
    sample: int | None = None,
    top: int = 10,
    examples: int = 5,
    limiter: RateLimiter | None = None,
    on_progress: ProgressCallback = no_progress,
    clock: Callable[[], float] = time.perf_counter,
    rng: random.Random | None = None,
    use_lua: bool = True,
    call_s: float = BATCH_TARGET_S,
    run_keys: int = SAMPLE_RUN,
) -> KeyspaceSurvey:
    """Aggregate every primary's keyspace per namespace of ``policy``.

    ``sample`` None measures every key (exact). ``sample=N`` attributes about
    ``SHARE_FACTOR·N`` keys read from SCAN at random cursors and measures about N of
    them (MEMORY USAGE, PTTL), spread evenly over the strata (each namespace, the
    unmatched keys, cachectl's own) so a small namespace's mean size is known as well
    as a big one's; inspect turns that into estimates with margins. When the keyspace
    is not much larger than that, every key is scanned and only every k-th measured.
    The primaries of a cluster are surveyed at the same time, a thread each, into
    accumulators of their own that are added up in node order at the end; each
    node's start and duration are in its NodeFigures.
    ``call_s``: how long each server-side call may run (the longest another client
    waits behind one); ``run_keys``: the keys a sample reads from each random cursor.
    Raises redis-py errors (wrap with ``redis_errors``).
    """
    rng = rng or random.Random()  # sampling, not security
    started = clock()
    namespaces = list(policy.namespaces.values())
    nodes = primaries(client)

    def node_facts(_: int, n: Any) -> tuple[int, int, float]:
        size = int(n.dbsize())
        node_used = int(_info(n, "memory").get("used_memory", 0))
        # SCAN skips keys that expired but are not reclaimed yet while DBSIZE counts them;
        # Redis estimates their share (INFO stats expired_stale_perc, Redis >= 6)
        stale = float(_info(n, "stats").get("expired_stale_perc", 0.0) or 0.0)
        return size, node_used, size * (1 - min(max(stale, 0.0), 100.0) / 100)

    facts = each_node(nodes, node_facts)
    sizes = [size for size, _, _ in facts]
    total = sum(sizes)
    used = sum(node_used for _, node_used, _ in facts)
    live = sum(node_live for _, _, node_live in facts)
    full_scan = sample is None or sample * SHARE_FACTOR >= total
    # a full scan of a keyspace not much bigger than the sample measures every k-th key;
    # a partial one measures per-stratum quotas instead
    stride = 1 if sample is None or not full_scan else max(1, round(total / max(sample, 1)))
    sampled = stride > 1 or not full_scan
    progress_total = total if full_scan else min(total, (sample or 0) * SHARE_FACTOR)
    matcher = NamespaceMatcher(namespaces)
    internal = (policy.internal_prefix + ":").encode()
    done = 0
    progress_lock = threading.Lock()
    stop = threading.Event()
    # one generator per node, so the nodes' draws do not depend on how their threads
    # interleave (a standalone server draws from ``rng`` itself, as it always did)
    rngs = [rng] if len(nodes) == 1 else [random.Random(rng.getrandbits(64)) for _ in nodes]

    def report(keys: int) -> None:
        nonlocal done
        with progress_lock:
            done += keys
            on_progress("scanning keys", min(done, progress_total), progress_total)

    def survey_node(index: int, node: Any) -> tuple[SurveyAccumulator, str, float, float]:
        """One primary, whole: (its accumulator, the method used, start, seconds)."""
        node_started = clock()
        acc = SurveyAccumulator(namespaces, top, examples)
        method = "lua" if use_lua else "pipeline"
        size = sizes[index]
        if size == 0:
            return acc, method, node_started - started, 0.0
        node_rng = rngs[index]
        name = node_name(node)
        lock = threading.Lock()  # the node's lanes merge into its accumulator

        def merge(reply: list[Any]) -> list[int]:
            _, counters, ns_recs, shape_recs, top_recs = reply
            with lock:
                strata = acc.merge_lua(name, counters, ns_recs, shape_recs, top_recs)
            report(counters[0])
            return strata

        def run_lane(script: Any, lane: int, cursor: int, count: int, budget_us: int) -> None:
            # one quarter of the cursor space: from its start until SCAN leaves it
            while not stop.is_set():
                reply = script(args=survey_args(
                    policy, namespaces, cursor=cursor, count=count, stride=1, offset=0,
                    top=top, examples=examples, budget_us=budget_us, lane=lane))
                merge(reply)
                cursor = int(reply[0])
                if cursor == 0 or cursor % LANES != LANE_STARTS[lane]:
                    return

        def sample_node(pool: ThreadPoolExecutor, script: Any, quota: int,
                        to_measure: int) -> None:
            # runs from random cursors, IN_FLIGHT calls queued at a time: each is
            # independent of the last except for the stratum quota, which may lag one
            # call behind
            base = survey_args(policy, namespaces, cursor=0, count=INNER_COUNT, stride=1,
                               offset=0, top=top, examples=examples,
                               budget_us=int(call_s * 1e6))
            seen = [0] * (len(namespaces) + 2)
            calls = scanned = measured = 0
            # (call, keys it reads, keys it is expected to measure)
            flying: deque[tuple[Future[Any], int, float]] = deque()
            try:
                while not stop.is_set():
                    planned = scanned + sum(run for _, run, _ in flying)
                    promised = measured + sum(m for _, _, m in flying)
                    # the first call goes alone: the next ones size their quota by what it saw
                    while len(flying) < (IN_FLIGHT if calls else 1) and planned < quota:
                        run = min(run_keys, quota - planned)
                        q = stratum_quota(seen, calls,
                                          math.ceil((quota - planned) / run_keys),
                                          round(to_measure - promised))
                        args = list(base)
                        args[ARG_CURSOR] = node_rng.getrandbits(31)
                        args[ARG_MAX_KEYS] = run
                        args[ARG_QUOTA] = q
                        expect = (sum(min(n * run / run_keys / calls, q) for n in seen)
                                  if calls else q)
                        flying.append((pool.submit(script, args=args), run, expect))
                        planned += run
                        promised += expect
                    if not flying:
                        return
                    reply = flying.popleft()[0].result()
                    strata = merge(reply)
                    calls += 1
                    scanned += sum(strata)
                    measured += sum(reply[1][1:4])  # measured, gone, denied
                    seen = [a + b for a, b in zip(seen, strata, strict=True)]
            finally:
                for future, _, _ in flying:
                    future.cancel()
                    future.exception()

        quota = None if full_scan else math.ceil((sample or 0) * SHARE_FACTOR * size / total)
        # a sample measures about its share of N here, the same number per stratum in each
        # call (see stratum_quota)
        to_measure = math.ceil((sample or 0) * size / total)
        strata_seen = [0] * (len(namespaces) + 2)
        calls = 0
        # the script loops SCAN until its time budget is spent (a sample also stops after
        # ``run_keys`` keys, so it is drawn from many random starting points); rate-limited
        # scans take one SCAN per call, sized by COUNT
        budget_us = int(call_s * 1e6) if limiter is None else 0
        count = INNER_COUNT if budget_us else 500
        # Big nodes are walked as LANES quarters of the cursor space at once, so the
        # server always has the next batch queued while the client merges the last
        # (scripts only: the pipelined path walks the whole cursor space itself)
        lanes = (method == "lua" and quota is None and budget_us > 0 and stride == 1
                 and size >= PARALLEL_MIN_KEYS)
        others: list[Future[None]] = []
        cursor: int | bytes = 0 if full_scan else node_rng.getrandbits(31)
        node_scanned = node_measured = 0
        offset = node_rng.randrange(stride) if stride > 1 else 0
        script = node.register_script(SURVEY_LUA)
        with ThreadPoolExecutor(max_workers=LANES - 1) as pool:
            if quota is not None and method == "lua" and limiter is None:
                try:
                    sample_node(pool, script, quota, to_measure)
                    return acc, method, node_started - started, clock() - node_started
                except rex.ResponseError as exc:
                    if not _scripting_refused(exc):
                        raise
                    method = "pipeline"  # nothing was merged: the loop below redoes the node
            try:
                while not stop.is_set():
                    t0 = clock()
                    server_s: float | None = None
                    per_stratum = 0 if quota is None else stratum_quota(
                        strata_seen, calls, math.ceil((quota - node_scanned) / run_keys),
                        to_measure - node_measured)
                    if method == "lua":
                        try:
                            reply = script(args=survey_args(
                                policy, namespaces, cursor=cursor, count=count, stride=stride,
                                offset=offset, top=top, examples=examples,
                                budget_us=budget_us, lane=0 if lanes else None,
                                max_keys=0 if quota is None else min(
                                    run_keys, max(1, quota - node_scanned)),
                                quota=per_stratum))
                        except rex.ResponseError as exc:
                            if not _scripting_refused(exc):
                                raise
                            method = "pipeline"
                            lanes = False
                            continue
                        next_cursor = reply[0]
                        measured_before = acc.measured + acc.gone + acc.denied
                        strata = merge(reply)
                        if reply[1][6] >= 0:
                            server_s = reply[1][6] / 1e6
                        if lanes and not others:
                            others = [pool.submit(run_lane, script, i, LANE_STARTS[i], count,
                                                  budget_us) for i in range(1, LANES)]
                    else:
                        next_cursor, keys = node.scan(cursor=cursor, count=count)
                        with lock:
                            measured_before = acc.measured + acc.gone + acc.denied
                            strata = acc.add_python(node, keys, stride, offset, internal,
                                                    matcher, quota=per_stratum)
                        report(len(keys))
                    batch = sum(strata)
                    calls += 1
                    node_measured += acc.measured + acc.gone + acc.denied - measured_before
                    strata_seen = [a + b for a, b in zip(strata_seen, strata, strict=True)]
                    # the script times itself with TIME, so a busy client does not shrink
                    # batches; otherwise keep each call near the target by resizing COUNT
                    elapsed = server_s if server_s is not None else clock() - t0
                    if elapsed > 0 and not (budget_us and server_s is not None):
                        count = int(min(MAX_BATCH, max(MIN_BATCH, count * min(
                            2.0, max(0.5, call_s / elapsed)))))
                    node_scanned += batch
                    if limiter is not None and batch:
                        limiter.wait(batch)
                    if quota is None:
                        cursor = next_cursor
                        if int(cursor) == 0 or (lanes and int(cursor) % LANES != 0):
                            break
                    else:
                        if node_scanned >= quota:
                            break
                        cursor = node_rng.getrandbits(31)
            except BaseException:
                stop.set()
                raise
            finally:
                for other in others:
                    other.result()
        return acc, method, node_started - started, clock() - node_started

    on_progress("scanning keys", 0, progress_total)
    results = each_node(nodes, survey_node, halt=stop)
    acc = SurveyAccumulator(namespaces, top, examples)
    method = "lua" if use_lua else "pipeline"
    figures = []
    for node, size, (_, node_used, _), (node_acc, node_method, at, took) in zip(
            nodes, sizes, facts, results, strict=True):
        acc.absorb(node_acc)
        if node_method == "pipeline":
            method = "pipeline"
        figures.append(NodeFigures(node_name(node), size, node_used, started_s=at,
                                   elapsed_s=took))
    return acc.freeze(sampled=sampled, total_keys=total, used_memory=used,
                      nodes=tuple(figures), elapsed_s=clock() - started,
                      method=method, live_keys=live)
