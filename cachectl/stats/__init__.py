"""``cachectl stats``: hit rate, memory and latency against the policy's thresholds.

    report = collect_stats(client, policy, StatsOptions(interval_s=5, window_s=900))
    report.status, report.checks, report.nodes, report.namespaces

Server figures are deltas between two INFO snapshots ``interval_s`` apart on every
primary (plus since-restart totals, labelled so); per-namespace figures come from the
library's counters over the window and, unless ``scan=False``, a sampled SCAN.
For repeated reports (``--watch``, ``--serve``) ``StatsSampler`` reuses the previous
report's closing snapshots as the next baseline, so only the first report waits.

The core takes a monotonic ``clock``, a ``wall_clock`` (epoch seconds, for the counter
window) and a ``sleep`` function, so tests need not wait. Redis errors propagate as
redis-py exceptions; the caller wraps the call in ``connection.redis_errors``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cachectl.connection import node_name, primaries
from cachectl.counter_format import COUNTER_RETENTION_S, NamespaceCounters
from cachectl.errors import UsageError
from cachectl.fanout import each_node
from cachectl.policy.model import Policy
from cachectl.stats.checks import namespace_checks, server_checks
from cachectl.stats.model import (
    SCHEMA_VERSION,
    Check,
    KeySample,
    ModelHint,
    NamespaceStats,
    NodeStats,
    ReadLatency,
    ScanSummary,
    StatsReport,
    Status,
    worst,
)
from cachectl.stats.namespaces import (
    DEFAULT_SAMPLE_KEYS,
    read_counters,
    sample_keyspace,
    window_minutes,
)
from cachectl.stats.nodes import Snapshot, node_stats, take_snapshot, total_stats

__all__ = [
    "SCHEMA_VERSION",
    "Check",
    "KeySample",
    "ModelHint",
    "NamespaceStats",
    "NodeStats",
    "ReadLatency",
    "ScanSummary",
    "StatsOptions",
    "StatsReport",
    "StatsSampler",
    "Status",
    "collect_stats",
]

MAX_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class StatsOptions:
    """What to measure. ``namespaces`` empty means every namespace of the policy."""

    interval_s: float = 5.0
    window_s: int = 900
    namespaces: tuple[str, ...] = ()
    scan: bool = True
    sample_keys: int = DEFAULT_SAMPLE_KEYS

    def validate(self, policy: Policy) -> None:
        """UsageError for an interval, window, sample size or namespace that cannot work."""
        if not 0 < self.interval_s <= MAX_INTERVAL_S:
            raise UsageError(f"--interval must be between 0 and {MAX_INTERVAL_S:g}s",
                             hint="e.g. --interval 5s")
        if not 60 <= self.window_s <= COUNTER_RETENTION_S:
            raise UsageError(
                f"--window must be between 1m and {COUNTER_RETENTION_S // 86400}d "
                "(counters are per minute and kept that long)", hint="e.g. --window 15m")
        if self.sample_keys < 1:
            raise UsageError("--sample-keys must be at least 1")
        for name in self.namespaces:
            policy.namespace(name)  # UsageError with a did-you-mean


class StatsSampler:
    """Produces reports; each after the first measures from the previous one's end."""

    def __init__(self, client: Any, policy: Policy, options: StatsOptions, *, target: str = "",
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        options.validate(policy)
        self.client = client
        self.policy = policy
        self.options = options
        self.target = target
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self._baseline: dict[str, Snapshot] = {}

    def _name(self, node: Any) -> str:
        """host:port; a Sentinel-managed client has none, so the target names it."""
        name = node_name(node)
        return self.target if name.startswith("?") and self.target else name

    def _snapshots(self, nodes: list[Any]) -> dict[str, Snapshot]:
        """Every primary's snapshot, taken at the same time (a thread per primary)."""
        names = [self._name(n) for n in nodes]
        taken = each_node(nodes, lambda i, node: take_snapshot(node, names[i], self.clock()))
        return dict(zip(names, taken, strict=True))

    def _pairs(self, nodes: list[Any]) -> list[tuple[Snapshot, Snapshot]]:
        names = [self._name(n) for n in nodes]
        if all(name in self._baseline for name in names):
            after = self._snapshots(nodes)
            # a restarted server resets its counters: measure afresh
            if all(after[n].info.get("run_id") == self._baseline[n].info.get("run_id")
                   and after[n].at > self._baseline[n].at for n in names):
                return [(self._baseline[n], after[n]) for n in names]
        before = self._snapshots(nodes)
        self.sleep(self.options.interval_s)
        after = self._snapshots(nodes)
        return [(before[n], after[n]) for n in names]

    def prime(self) -> None:
        """Take the baseline now, so the next report measures from here without waiting."""
        self._baseline = self._snapshots(primaries(self.client))

    def report(self, *, keep_baseline: bool = True) -> StatsReport:
        """Measure once: server deltas, counters over the window, the sampled scan, verdicts.

        ``keep_baseline`` takes closing snapshots (one more round trip per primary) that
        the next call measures from.
        """
        opts, policy, t = self.options, self.policy, self.policy.thresholds
        nodes = primaries(self.client)
        pairs = self._pairs(nodes)
        node_figures = [node_stats(before, after) for before, after in pairs]
        total = total_stats(pairs, node_figures)

        # read our own keys only after the interval, so they never count in it
        now = self.wall_clock()
        minutes = window_minutes(now, opts.window_s)
        window, running = read_counters(self.client, policy.internal_prefix, minutes)
        counters = window.namespaces
        selected = list(opts.namespaces) or list(policy.namespaces)
        names = list(selected)
        if not opts.namespaces:
            names += sorted(n for n in set(counters) | set(running.namespaces)
                            if n not in policy.namespaces)

        keys: dict[str, KeySample] = {}
        scan = ScanSummary(enabled=False)
        if opts.scan:
            keys, scan = sample_keyspace(self.client, policy.namespaces.values(), selected,
                                         sample_keys=opts.sample_keys, clock=self.clock)

        verified = _verify_records(self.client, policy)
        namespace_figures: list[NamespaceStats] = []
        checks: list[Check] = []
        hot = any(policy.namespaces[n].hot for n in selected)
        for figures in node_figures:
            checks.extend(server_checks(figures, t, hot=hot, per_node=True))
        for name in names:
            ns = policy.namespaces.get(name)
            c = counters.get(name, NamespaceCounters())
            draft = _namespace_stats(name, c, ns is not None,
                                     ns.critical if ns else False, ns.hot if ns else False,
                                     ns.hit_rate if ns else t.hit_rate, keys.get(name),
                                     running.namespaces.get(name, NamespaceCounters()))
            found = namespace_checks(draft, t)
            checks.extend(found)
            namespace_figures.append(replace(draft, status=worst(x.status for x in found),
                                             verify=verified.get(name)))

        # the next report measures from here, after our own reads
        if keep_baseline:
            self._baseline = self._snapshots(nodes)
        return StatsReport(
            generated_at=datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            target=self.target,
            interval_s=total.interval_s,
            window_s=opts.window_s,
            window_minutes=(minutes[0], minutes[-1]),
            nodes=tuple(node_figures),
            total=total,
            namespaces=tuple(namespace_figures),
            checks=tuple(checks),
            scan=scan,
            status=worst(c.status for c in checks),
            skipped_counter_fields=window.skipped_fields + running.skipped_fields,
        )


def _namespace_stats(name: str, c: NamespaceCounters, in_policy: bool, critical: bool, hot: bool,
                     threshold: float, keys: KeySample | None,
                     totals: NamespaceCounters) -> NamespaceStats:
    return NamespaceStats(
        namespace=name,
        in_policy=in_policy,
        critical=critical,
        hot=hot,
        hit_rate_threshold=threshold,
        fresh_hits=c.fresh_hits,
        stale_hits=c.stale_hits,
        fail_safe_hits=c.fail_safe_hits,
        misses=c.misses,
        refreshes=c.refreshes,
        refresh_errors=c.refresh_errors,
        redis_errors=c.redis_errors,
        loads=c.loads,
        hits=c.hits,
        requests=c.requests,
        hit_rate=c.hit_rate,
        stale_ratio=c.stale_ratio,
        origin_calls_saved=c.hits,
        mean_load_ms=c.mean_load_ms,
        status=Status.PASS,
        keys=keys,
        counter_totals=totals.as_dict(),
        trace_dropped=c.trace_dropped,
    )


def _verify_records(client: Any, policy: Policy) -> dict[str, dict[str, Any]]:
    """The last verify result per namespace; none when the user may not read the hash."""
    import redis.exceptions as rex

    from cachectl.verify import read_records

    try:
        return read_records(client, policy)
    except rex.NoPermissionError:
        return {}


def collect_stats(client: Any, policy: Policy, options: StatsOptions, *, target: str = "",
                  clock: Callable[[], float] = time.monotonic,
                  wall_clock: Callable[[], float] = time.time,
                  sleep: Callable[[float], None] = time.sleep) -> StatsReport:
    """One report: two snapshots ``options.interval_s`` apart, counters, scan, verdicts.

    Raises UsageError for bad options or namespaces; redis-py errors propagate.
    """
    sampler = StatsSampler(client, policy, options, target=target, clock=clock,
                           wall_clock=wall_clock, sleep=sleep)
    return sampler.report(keep_baseline=False)
