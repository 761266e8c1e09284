"""The flush itself: ``flush_namespaces`` removes (or softens) every key of its targets
in bounded, paced batches and reports what it did; stops cleanly when asked."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions as rex

from cachectl.connection import node_name
from cachectl.errors import InterruptedWork, UsageError
from cachectl.fanout import each_node
from cachectl.flush.history import Actor, append_audit, current_actor, error_line
from cachectl.flush.keys import (
    ScanAhead,
    primary_nodes,
    regroup_batches,
    shared_batches,
    target_glob,
    target_selector,
    union_glob,
)
from cachectl.flush.model import FlushResult, NodeResult, TargetResult, changed_word
from cachectl.flush.plan import EXAMPLES
from cachectl.flush.primitives import (
    DEFAULT_BATCH,
    MAX_BATCH,
    LatencyGovernor,
    SoftenCounts,
    clamp_keys,
    is_cluster_client,
    soften_keys,
    supports_pexpire_lt,
    unlink_keys,
)
from cachectl.flush.targets import FlushMode, FlushTarget, check_soft, describe
from cachectl.freshness import soft_expire_pttl_ms
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Policy
from cachectl.progress import ProgressCallback, no_progress


@dataclass
class _Tally:
    """Mutable counts while a target is being flushed (on one node, or in all)."""

    matched: int = 0
    changed: int = 0
    vanished: int = 0
    other: int = 0
    already: int = 0
    no_ttl: int = 0
    batches: int = 0
    uncertain: int = 0  # keys of a batch sent whose reply never came
    examples: list[bytes] = field(default_factory=list)

    def freeze(self, t: FlushTarget) -> TargetResult:
        return TargetResult(t.label, t.kind, t.name, self.matched, self.changed, self.vanished,
                            self.other, self.already, self.no_ttl, tuple(self.examples))

    def add(self, other: _Tally, examples: int) -> None:
        """Add another node's counts; its examples go after these (up to ``examples``)."""
        self.matched += other.matched
        self.changed += other.changed
        self.vanished += other.vanished
        self.other += other.other
        self.already += other.already
        self.no_ttl += other.no_ttl
        self.batches += other.batches
        self.uncertain += other.uncertain
        self.examples.extend(other.examples[:max(examples - len(self.examples), 0)])


@dataclass
class _NodeRun:
    """One primary's share of a flush: its own latency governor and pacing figures, and
    what it did to each target (``started``: its first SCAN, seconds after the flush
    began; ``busy``: seconds spent on its targets)."""

    node: Any
    name: str
    governor: LatencyGovernor
    tallies: dict[FlushTarget, _Tally]
    paused: float = 0.0
    started: float | None = None
    busy: float = 0.0

    def result(self, targets: Sequence[FlushTarget]) -> NodeResult:
        """What it did to ``targets`` (one step's)."""
        parts = [self.tallies[t] for t in targets]
        return NodeResult(self.name, sum(p.matched for p in parts),
                          sum(p.changed for p in parts), self.started or 0.0, self.busy)


@dataclass(frozen=True)
class FlushStep:
    """Targets flushed one way, reported (and audited) together as one FlushResult.

    ``ceilings_ms`` (namespace name -> PTTL) clamps (mode CLAMP), ``soft`` softens
    (SOFT), neither removes (HARD).
    """

    targets: tuple[FlushTarget, ...]
    soft: bool = False
    ceilings_ms: Mapping[str, int] | None = None

    @property
    def mode(self) -> FlushMode:
        if self.ceilings_ms is not None:
            return FlushMode.CLAMP
        return FlushMode.SOFT if self.soft else FlushMode.HARD


def check_pacing(rate: float | None, batch: int) -> None:
    """UsageError unless ``batch`` is 1..MAX_BATCH and ``rate`` (keys/s) is None or positive."""
    if not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch {batch} is out of range", hint=f"use 1..{MAX_BATCH}")
    if rate is not None and rate <= 0:
        raise UsageError(f"--rate {rate:g} must be positive", hint="e.g. --rate 5000 (keys/s)")


def flush_namespaces(
    client: Any,
    policy: Policy,
    targets: Sequence[FlushTarget],
    *,
    soft: bool = False,
    ceilings_ms: Mapping[str, int] | None = None,
    dry_run: bool = False,
    rate: float | None = None,
    batch: int = DEFAULT_BATCH,
    on_progress: ProgressCallback = no_progress,
    totals: dict[str, int] | None = None,
    should_stop: Callable[[], bool] | None = None,
    actor: Actor | None = None,
    examples: int = EXAMPLES,
    watch_latency: bool = True,
    latency_check_s: float = 0.02,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> FlushResult:
    """Remove (or with ``soft``, soften) every key of ``targets``; return what was done.

    ``batch`` bounds the keys per UNLINK/script call (1..10000); ``rate`` caps keys
    per second (all primaries together); ``totals`` (target label -> planned count)
    feeds ``on_progress``.
    ``should_stop`` is polled after every batch: when it returns True the run stops
    there, appends its audit entry, and raises InterruptedWork carrying the partial
    FlushResult (a rerun finishes the job: flushed keys are simply not found again).
    ``dry_run`` scans and counts, touching nothing and writing no audit entry.
    ``watch_latency``: time a PING on the node right after a batch (from the worker
    that sent it), at most every ``latency_check_s`` seconds or ten round trips,
    whichever is longer (0: after every batch), and let ``LatencyGovernor`` shrink
    batches and pause (one governor per primary: each is judged by its own latency).
    ``ceilings_ms`` (namespace name -> PTTL) clamps instead of flushing: every key of a
    target whose PTTL is above its ceiling, or that has no expiry, gets the ceiling
    (``PEXPIRE … LT`` where the server has it), nothing else changes (mode CLAMP).

    The targets are flushed one after the other; the primaries of a cluster are
    flushed at the same time, a thread each (see ``_flush_node``), and each one's
    figures are in ``FlushResult.nodes``.
    """
    step = FlushStep(tuple(targets), soft, ceilings_ms)
    _check_step(policy, step)
    try:
        return _run(client, policy, (step,), one_pass=False, dry_run=dry_run, rate=rate,
                    batch=batch, on_progress=on_progress, totals=totals,
                    should_stop=should_stop, actor=actor, examples=examples,
                    watch_latency=watch_latency, latency_check_s=latency_check_s, clock=clock,
                    sleep=sleep, wall_clock=wall_clock)[0]
    except (InterruptedWork, rex.RedisError) as exc:
        parts = getattr(exc, "partial", None)
        if isinstance(parts, tuple):
            exc.partial = parts[0]  # type: ignore[union-attr]
        raise


def flush_in_one_pass(
    client: Any,
    policy: Policy,
    steps: Sequence[FlushStep],
    *,
    rate: float | None = None,
    batch: int = DEFAULT_BATCH,
    on_progress: ProgressCallback = no_progress,
    totals: dict[str, int] | None = None,
    should_stop: Callable[[], bool] | None = None,
    actor: Actor | None = None,
    examples: int = EXAMPLES,
    watch_latency: bool = True,
    latency_check_s: float = 0.02,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> tuple[FlushResult, ...]:
    """Every step's namespace targets found by ONE SCAN walk of each primary; one
    FlushResult, and one audit entry, per step (in order).

    What ``flush_namespaces`` does step by step, with the same batches, pacing, latency
    governor per primary and ownership test, except that the keys come from a single
    walk whose glob covers every target (``union_glob``): each SCAN reply is split among
    the targets by their exact selectors, so a change that clamps one namespace and
    removes another reads the keyspace once, not once per target. Batches of different
    steps interleave; each result's ``seconds`` and pacing figures (backoffs, pauses,
    max PING, each node's start and time) are the walk's. Interrupted (``should_stop``),
    it stops after the batch in flight, writes each step's audit entry and raises
    InterruptedWork whose ``partial`` is the tuple of results; a redis-py error carries
    that tuple as ``partial`` likewise.
    """
    targets = [t for step in steps for t in step.targets]
    if any(t.kind != "namespace" for t in targets) or len(set(targets)) != len(targets):
        raise UsageError("one pass takes namespace targets, each in one step only")
    for step in steps:
        _check_step(policy, step)
    return _run(client, policy, tuple(steps), one_pass=True, dry_run=False, rate=rate,
                batch=batch, on_progress=on_progress, totals=totals, should_stop=should_stop,
                actor=actor, examples=examples, watch_latency=watch_latency,
                latency_check_s=latency_check_s, clock=clock, sleep=sleep,
                wall_clock=wall_clock)


def _check_step(policy: Policy, step: FlushStep) -> None:
    if step.ceilings_ms is not None:
        missing = [t.label for t in step.targets
                   if t.kind == "pattern" or t.name not in step.ceilings_ms]
        if missing:
            raise UsageError(f"no TTL ceiling for {', '.join(missing)}")
    elif step.soft:  # library callers may build targets themselves
        check_soft(policy, step.targets)


def _run(
    client: Any,
    policy: Policy,
    steps: tuple[FlushStep, ...],
    *,
    one_pass: bool,
    dry_run: bool,
    rate: float | None,
    batch: int,
    on_progress: ProgressCallback,
    totals: dict[str, int] | None,
    should_stop: Callable[[], bool] | None,
    actor: Actor | None,
    examples: int,
    watch_latency: bool,
    latency_check_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    wall_clock: Callable[[], float],
) -> tuple[FlushResult, ...]:
    """The flush of ``steps``: each target walked on its own, or all in ``one_pass``.

    Raises InterruptedWork and redis-py errors with the tuple of results as ``partial``.
    """
    check_pacing(rate, batch)
    limiter = RateLimiter(rate, clock=clock, sleep=sleep)
    cluster = is_cluster_client(client)
    lt_supported = (any(step.ceilings_ms is not None for step in steps) and not dry_run
                    and supports_pexpire_lt(client, f"{policy.internal_prefix}:probe"))
    step_of = {t: i for i, step in enumerate(steps) for t in step.targets}
    targets = list(step_of)
    tallies = {t: _Tally() for t in targets}
    started = clock()
    runs = ([_NodeRun(n, node_name(n), LatencyGovernor(batch), {t: _Tally() for t in targets})
             for n in primary_nodes(client)]
            if any(t.kind != "key" for t in targets) else [])
    # one named key: the client routes it (its counts go straight to the target's tally)
    key_run = _NodeRun(client, "", LatencyGovernor(batch), tallies)
    halt = threading.Event()  # one node failed, or should_stop said so: every node stops
    stopping = threading.Event()  # should_stop said so
    progress_lock = threading.Lock()
    found: dict[FlushTarget, int] = dict.fromkeys(targets, 0)
    interrupted = False

    def finish() -> tuple[FlushResult, ...]:
        every = [*runs, key_run]
        seconds = clock() - started
        return tuple(FlushResult(
            step.mode, dry_run, describe(step.targets),
            tuple(tallies[t].freeze(t) for t in step.targets), seconds,
            sum(tallies[t].batches for t in step.targets),
            sum(r.governor.backoffs for r in every), sum(r.paused for r in every),
            max(r.governor.max_rtt_ms for r in every), interrupted,
            uncertain=sum(tallies[t].uncertain for t in step.targets),
            nodes=tuple(r.result(step.targets) for r in runs)) for step in steps)

    def advance(target: FlushTarget, keys: int) -> None:
        with progress_lock:
            found[target] += keys
            on_progress(target.label, found[target], (totals or {}).get(target.label))

    def flush_node(run: _NodeRun, make_batches: Callable[[Callable[[], int]], Batches]) -> None:
        """One walk on one node (or one named key): batches sent, counted, paced.

        Three connections keep the server busy: ScanAhead's thread issues the SCANs back
        to back, this thread filters their replies into batches, and one worker sends
        each batch's UNLINK (or script), then the latency probe when one is due, so no
        round trip of its own stalls this thread. At most one batch is ever in flight,
        and it is always settled (counted) before stopping.
        """
        t0 = clock()
        if run.started is None:
            run.started = t0 - started
        governor = run.governor
        worker = None if dry_run else ThreadPoolExecutor(1, thread_name_prefix="cachectl-flush")
        in_flight: list[tuple[Future[tuple[Any, float | None]], _Tally, int]] = []
        next_check = t0

        def send(call: Callable[[], Any], probe: Any) -> tuple[Any, float | None]:
            done = call()
            if probe is None:
                return done, None
            p0 = clock()
            probe.ping()
            return done, clock() - p0

        def settle() -> None:
            nonlocal next_check
            while in_flight:
                future, tally, sent = in_flight[0]
                done, rtt = future.result()
                in_flight.pop(0)
                if isinstance(done, SoftenCounts):
                    tally.changed += done.softened
                    tally.no_ttl += done.no_ttl
                    tally.already += done.already_stale
                    tally.vanished += done.vanished
                else:
                    tally.changed += done
                    tally.vanished += sent - done
                if rtt is not None:
                    pause = governor.observe(rtt * 1000)
                    if pause:
                        sleep(pause)
                        run.paused += pause
                    # probing costs a round trip too: keep it under ~10 % of the time
                    next_check = clock() + (max(latency_check_s, 10 * rtt)
                                            if latency_check_s > 0 else 0)

        def batch_size() -> int:
            settle()  # the answer to the batch in flight (and to its probe) sizes the next
            return governor.batch

        def act(node: Any, target: FlushTarget, keys: list[bytes]) -> None:
            nonlocal next_check
            tally = run.tallies[target]
            tally.matched += len(keys)
            room = examples - len(tally.examples)
            if room > 0:
                tally.examples.extend(keys[:room])
            if worker is None or not keys:
                return
            run.paused += limiter.wait(len(keys))
            settle()
            step = steps[step_of[target]]
            call: Callable[[], Any]
            if step.ceilings_ms is not None:
                call = functools.partial(clamp_keys, node, keys, step.ceilings_ms[target.name],
                                         lt_supported=lt_supported, cluster=cluster or None)
            elif step.soft:
                pttl = soft_expire_pttl_ms(policy.namespace(target.name))
                call = functools.partial(soften_keys, node, keys, pttl, cluster=cluster or None)
            else:
                call = functools.partial(unlink_keys, node, keys, cluster=cluster or None)
            # the PING goes right after the batch, as another client's command would
            probe = node if watch_latency and clock() >= next_check else None
            if probe is not None:
                next_check = float("inf")  # until this probe's answer is in
            in_flight.append((worker.submit(send, call, probe), tally, len(keys)))
            tally.batches += 1

        try:
            # closing: stopping early ends the SCAN thread now, not when collected
            with contextlib.closing(make_batches(batch_size)) as batches:
                for node, target, chunk in batches:
                    act(node, target, chunk)
                    advance(target, len(chunk))
                    if should_stop is not None and should_stop():
                        stopping.set()
                        halt.set()
                    if halt.is_set():
                        break
            settle()
        except KeyboardInterrupt:
            # a second Ctrl-C (or no handler): wait for the batch in flight so the counts
            # are exact, unless interrupted again
            halt.set()
            with contextlib.suppress(KeyboardInterrupt):
                settle()
            raise
        except rex.RedisError:
            # the batch in flight got no reply: the server may have run it ("uncertain")
            halt.set()
            for _, tally, sent in in_flight:
                tally.uncertain += sent
            raise
        finally:
            if worker is not None:
                worker.shutdown(wait=True)
            run.busy += clock() - t0

    def flush_walk(walk: list[FlushTarget]) -> None:
        """Every primary at once (a named key: on the client); the nodes' counts added up
        in node order, also when one failed or the run was interrupted."""
        if walk[0].kind == "key":
            target = walk[0]
            tally = tallies[target]
            flush_node(key_run, lambda size: _one_target(
                target, _owned_batches(client, policy, target, tally, lambda: batch), size))
            # one named key: one that did not exist was never matched, not skipped
            tally.matched -= tally.vanished
            tally.vanished = 0
            return
        parts = [{t: _Tally() for t in walk} for _ in runs]

        def node_walk(i: int, run: _NodeRun) -> None:
            run_parts = _NodeRun(run.node, run.name, run.governor, parts[i])
            try:
                flush_node(run_parts, lambda size: _walk_batches(
                    run.node, policy, walk, parts[i], lambda: run.governor.batch, size))
            finally:
                run.paused += run_parts.paused
                run.busy += run_parts.busy
                if run.started is None:
                    run.started = run_parts.started
        try:
            each_node(runs, node_walk, halt=halt)
        finally:
            for i, part in enumerate(parts):
                for target in walk:
                    tallies[target].add(part[target], examples)
                    runs[i].tallies[target].add(part[target], examples)

    walks = [targets] if one_pass else [[t] for t in targets]
    try:
        for walk in walks:
            for target in walk:
                on_progress(target.label, 0, (totals or {}).get(target.label))
            flush_walk(walk)
            if stopping.is_set():
                interrupted = True
                break
            for target in walk:
                total = (totals or {}).get(target.label)
                on_progress(target.label, tallies[target].matched,
                            max(total or 0, tallies[target].matched))
    except KeyboardInterrupt:
        interrupted = True  # every node settled its batch in flight (unless interrupted again)
    except rex.RedisError as exc:
        # Redis failed part-way (connection lost, a stall past --timeout, a permission):
        # record what is known, if anything was sent and the audit stream can still be
        # written, and hand it to the caller on the exception (``partial``). The batches
        # in flight got no reply: the server may have run them, so they are "uncertain"
        partials = []
        for result in finish():
            partial = FlushResult(**{**result.__dict__, "interrupted": True})
            if (partial.changed or partial.uncertain) and not dry_run:
                with contextlib.suppress(rex.RedisError):
                    audit_id = append_audit(client, policy, partial, actor or current_actor(),
                                            wall_clock())
                    partial = FlushResult(**{**partial.__dict__, "audit_id": audit_id})
            partials.append(partial)
        exc.partial = tuple(partials)  # type: ignore[attr-defined]
        raise
    results = []
    for result in finish():
        if not dry_run and (result.matched or interrupted):
            try:
                audit_id = append_audit(client, policy, result, actor or current_actor(),
                                        wall_clock())
                result = FlushResult(**{**result.__dict__, "audit_id": audit_id})
            except rex.RedisError as exc:
                # the keys are flushed either way; say so rather than fail the whole run
                result = FlushResult(**{**result.__dict__, "audit_error": error_line(exc)})
        results.append(result)
    if interrupted:
        done = ", ".join(f"{r.changed} of {r.matched} keys found so far {changed_word(r.mode)}"
                         for r in results)
        raise InterruptedWork(
            f"interrupted: {done}", partial=tuple(results),
            hint="whatever was flushed is complete; rerun the same command to finish")
    return tuple(results)


Batches = Generator[tuple[Any, FlushTarget, list[bytes]], None, None]


def _one_target(target: FlushTarget, found: Generator[tuple[Any, list[bytes]], None, None],
                size: Callable[[], int]) -> Batches:
    """One target's per-SCAN key lists (``_owned_batches``) regrouped into batches."""
    with contextlib.closing(found):
        for node, keys in regroup_batches(found, size):
            yield node, target, keys


def _walk_batches(node: Any, policy: Policy, walk: list[FlushTarget],
                  tallies: Mapping[FlushTarget, _Tally], count: Callable[[], int],
                  size: Callable[[], int]) -> Batches:
    """One primary's SCAN walk for ``walk``'s targets, in batches of ``size()`` keys:
    one target with its own glob, several at once with ``union_glob`` (each reply split
    by the targets' selectors, ``shared_batches``)."""
    if len(walk) == 1:
        target = walk[0]
        yield from _one_target(target, _owned_batches(node, policy, target, tallies[target],
                                                      count, one_node=True), size)
        return

    def other(target: FlushTarget, n: int) -> None:
        tallies[target].other += n
    selectors = [(t, target_selector(policy, t)) for t in walk]
    with contextlib.closing(ScanAhead([node], union_glob(policy, walk), count)) as scans:
        yield from shared_batches(iter(scans), selectors, size, other)


def _owned_batches(client: Any, policy: Policy, target: FlushTarget, tally: _Tally,
                   count: Callable[[], int], *,
                   one_node: bool = False) -> Generator[tuple[Any, list[bytes]], None, None]:
    """``(node, keys)``: the target's own keys, one list per SCAN (COUNT from ``count()``).

    Every primary (or, with ``one_node``, ``client`` alone: one primary's client) is
    scanned with the template's escaped glob (or the raw pattern) by ``ScanAhead``, so the
    next SCAN is on the wire while this thread filters the last reply;
    ``target_selector`` keeps exactly the target's keys and counts in ``tally.other``
    those the exact regex accepts but another namespace or cachectl owns. COUNT follows
    the latency governor: a SCAN's cost grows with COUNT, so when the server's latency
    rises each SCAN gets shorter too.
    """
    select = target_selector(policy, target)
    if target.kind == "key":
        assert target.key is not None
        own, other = select([target.key])
        tally.other += other
        yield client, own  # the client routes a single key itself (cluster too)
        return
    nodes = [client] if one_node else primary_nodes(client)
    with contextlib.closing(ScanAhead(nodes, target_glob(policy, target), count)) as scans:
        for node, keys in scans:
            own, other = select(keys)
            tally.other += other
            if own:
                yield node, own
