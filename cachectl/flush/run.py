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
from cachectl.flush.keys import ScanAhead, primary_nodes, regroup_batches, target_glob, target_selector
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
        self.examples.extend(other.examples[:max(examples - len(self.examples), 0)])


@dataclass
class _NodeRun:
    """One primary's share of a flush: its own latency governor and pacing figures, and
    what it did over every target (``started``: its first SCAN, seconds after the flush
    began; ``busy``: seconds spent on its targets)."""

    node: Any
    name: str
    governor: LatencyGovernor
    batches: int = 0
    paused: float = 0.0
    started: float | None = None
    busy: float = 0.0
    matched: int = 0
    changed: int = 0
    uncertain: int = 0  # keys of a batch sent whose reply never came

    def result(self) -> NodeResult:
        return NodeResult(self.name, self.matched, self.changed, self.started or 0.0, self.busy)


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
    check_pacing(rate, batch)
    mode = FlushMode.CLAMP if ceilings_ms is not None else (
        FlushMode.SOFT if soft else FlushMode.HARD)
    if ceilings_ms is not None:
        missing = [t.label for t in targets if t.kind == "pattern" or t.name not in ceilings_ms]
        if missing:
            raise UsageError(f"no TTL ceiling for {', '.join(missing)}")
    elif soft:  # library callers may build targets themselves
        check_soft(policy, targets)
    limiter = RateLimiter(rate, clock=clock, sleep=sleep)
    cluster = is_cluster_client(client)
    lt_supported = (ceilings_ms is not None and not dry_run
                    and supports_pexpire_lt(client, f"{policy.internal_prefix}:probe"))
    tallies = {t: _Tally() for t in targets}
    started = clock()
    runs = ([_NodeRun(n, node_name(n), LatencyGovernor(batch)) for n in primary_nodes(client)]
            if any(t.kind != "key" for t in targets) else [])
    key_run = _NodeRun(client, "", LatencyGovernor(batch))  # one named key: the client routes it
    halt = threading.Event()  # one node failed, or should_stop said so: every node stops
    stopping = threading.Event()  # should_stop said so
    progress_lock = threading.Lock()
    found: dict[FlushTarget, int] = dict.fromkeys(targets, 0)
    interrupted = False

    def finish() -> FlushResult:
        every = [*runs, key_run]
        return FlushResult(
            mode, dry_run, describe(targets), tuple(tallies[t].freeze(t) for t in targets),
            clock() - started, sum(r.batches for r in every),
            sum(r.governor.backoffs for r in every), sum(r.paused for r in every),
            max(r.governor.max_rtt_ms for r in every), interrupted,
            nodes=tuple(r.result() for r in runs))

    def advance(target: FlushTarget, keys: int, total: int | None) -> None:
        with progress_lock:
            found[target] += keys
            on_progress(target.label, found[target], total)

    def flush_node(run: _NodeRun, target: FlushTarget, tally: _Tally,
                   batches: Generator[tuple[Any, list[bytes]], None, None],
                   total: int | None) -> None:
        """One target on one node (or one named key): batches sent, counted, paced.

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
        in_flight: list[tuple[Future[tuple[Any, float | None]], int]] = []
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
                future, sent = in_flight[0]
                done, rtt = future.result()
                in_flight.pop(0)
                if isinstance(done, SoftenCounts):
                    tally.changed += done.softened
                    tally.no_ttl += done.no_ttl
                    tally.already += done.already_stale
                    tally.vanished += done.vanished
                    run.changed += done.softened
                else:
                    tally.changed += done
                    tally.vanished += sent - done
                    run.changed += done
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

        def act(node: Any, keys: list[bytes]) -> None:
            nonlocal next_check
            tally.matched += len(keys)
            run.matched += len(keys)
            room = examples - len(tally.examples)
            if room > 0:
                tally.examples.extend(keys[:room])
            if worker is None or not keys:
                return
            run.paused += limiter.wait(len(keys))
            settle()
            call: Callable[[], Any]
            if ceilings_ms is not None:
                call = functools.partial(clamp_keys, node, keys, ceilings_ms[target.name],
                                         lt_supported=lt_supported, cluster=cluster or None)
            elif soft:
                pttl = soft_expire_pttl_ms(policy.namespace(target.name))
                call = functools.partial(soften_keys, node, keys, pttl, cluster=cluster or None)
            else:
                call = functools.partial(unlink_keys, node, keys, cluster=cluster or None)
            # the PING goes right after the batch, as another client's command would
            probe = node if watch_latency and clock() >= next_check else None
            if probe is not None:
                next_check = float("inf")  # until this probe's answer is in
            in_flight.append((worker.submit(send, call, probe), len(keys)))
            run.batches += 1

        try:
            # closing: stopping early ends the SCAN thread now, not when collected
            with contextlib.closing(batches):
                for node, chunk in regroup_batches(batches, batch_size):
                    act(node, chunk)
                    advance(target, len(chunk), total)
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
            run.uncertain += sum(sent for _, sent in in_flight)
            raise
        finally:
            if worker is not None:
                worker.shutdown(wait=True)
            run.busy += clock() - t0

    def flush_target(target: FlushTarget, total: int | None) -> None:
        """Every primary at once (a named key: on the client); the nodes' counts added up
        in node order, also when one failed or the run was interrupted."""
        tally = tallies[target]
        if target.kind == "key":
            flush_node(key_run, target, tally,
                       _owned_batches(client, policy, target, tally, lambda: batch), total)
            # one named key: one that did not exist was never matched, not skipped
            tally.matched -= tally.vanished
            tally.vanished = 0
            return
        parts = [_Tally() for _ in runs]
        try:
            each_node(runs, lambda i, run: flush_node(
                run, target, parts[i],
                _owned_batches(run.node, policy, target, parts[i],
                               lambda: run.governor.batch, one_node=True), total), halt=halt)
        finally:
            for part in parts:
                tally.add(part, examples)

    try:
        for target in targets:
            total = (totals or {}).get(target.label)
            on_progress(target.label, 0, total)
            flush_target(target, total)
            if stopping.is_set():
                interrupted = True
                break
            tally = tallies[target]
            on_progress(target.label, tally.matched, max(total or 0, tally.matched))
    except KeyboardInterrupt:
        interrupted = True  # every node settled its batch in flight (unless interrupted again)
    except rex.RedisError as exc:
        # Redis failed part-way (connection lost, a stall past --timeout, a permission):
        # record what is known, if anything was sent and the audit stream can still be
        # written, and hand it to the caller on the exception (``partial``). The batches
        # in flight got no reply: the server may have run them, so they are "uncertain"
        uncertain = sum(r.uncertain for r in [*runs, key_run])
        partial = FlushResult(**{**finish().__dict__, "interrupted": True,
                                 "uncertain": uncertain})
        if (partial.changed or uncertain) and not dry_run:
            with contextlib.suppress(rex.RedisError):
                audit_id = append_audit(client, policy, partial, actor or current_actor(),
                                        wall_clock())
                partial = FlushResult(**{**partial.__dict__, "audit_id": audit_id})
        exc.partial = partial  # type: ignore[attr-defined]
        raise
    result = finish()
    if not dry_run and (result.matched or interrupted):
        try:
            audit_id = append_audit(client, policy, result, actor or current_actor(),
                                    wall_clock())
            result = FlushResult(**{**result.__dict__, "audit_id": audit_id})
        except rex.RedisError as exc:
            # the keys are flushed either way; say so rather than fail the whole run
            result = FlushResult(**{**result.__dict__, "audit_error": error_line(exc)})
    if interrupted:
        verb = changed_word(mode)
        raise InterruptedWork(
            f"interrupted: {result.changed} of {result.matched} keys found so far {verb}",
            partial=result, hint="whatever was flushed is complete; rerun the same command to finish")
    return result


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
