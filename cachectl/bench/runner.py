"""Run a benchmark: prepare keys, drive the clients, merge what they measured, judge it.

Each namespace × mode is one run: the clients connect, wait for a common start,
warm up for ``warmup_ms`` (not counted), then measure for ``duration_ms`` or until
``requests`` requests are done. Clients run as threads by default: the timed loop
spends most of its time in socket calls, which release the GIL. ``parallel=
"processes"`` gives each client its own interpreter (spawned, so a script calling
``run_bench`` needs the usual ``if __name__ == "__main__"`` guard).
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cachectl.bench import keys as bench_keys_mod
from cachectl.bench.histogram import LatencyHistogram, Percentiles
from cachectl.bench.model import (
    BenchConfig,
    BenchMode,
    BenchResult,
    OriginResult,
    RunResult,
    Verdict,
)
from cachectl.bench.origin import (
    OriginSource,
    origin_source,
    row_value,
    source_rows,
    time_origin,
)
from cachectl.bench.worker import (
    CTRL_START_NS,
    CTRL_STOP,
    Endpoint,
    WorkerPlan,
    WorkerReport,
    encode,
    process_main,
    run_worker,
)
from cachectl.errors import InterruptedWork, RedisUnavailableError, UsageError
from cachectl.freshness import write_ttl_ms
from cachectl.policy.model import Namespace, Policy
from cachectl.progress import ProgressCallback, no_progress

HOT_KEYS_MAX = 100
MAX_WRITE_BYTES = 256 * 1024 * 1024  # per namespace: benchmark keys must not crowd out the cache
_KEY_OVERHEAD_BYTES = 64  # Redis's per-key bookkeeping, roughly
ORIGIN_SAMPLES = 200
ORIGIN_BUDGET_NS = 3_000_000_000
_TTL_VARIANTS = 4
_READY_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- endpoint


@dataclass(frozen=True)
class BenchTarget:
    """The servers the raw clients talk to: one, or every primary of a cluster."""

    endpoints: tuple[Endpoint, ...]
    slot_nodes: tuple[int, ...] | None = None  # cluster: slot -> index into endpoints

    def node_of(self, key: bytes) -> int:
        if self.slot_nodes is None:
            return 0
        from redis.crc import key_slot

        return self.slot_nodes[key_slot(key)]


def endpoint_of(client: Any, *, url: str, tls_ca: str | None = None,
                tls_cert: str | None = None, tls_key: str | None = None,
                tls_insecure: bool = False, timeout_s: float = 5.0,
                use_tls: bool | None = None) -> BenchTarget:
    """Where ``client`` is connected (Sentinel master or cluster primaries resolved).

    ``use_tls``: whether to speak TLS (``ConnectionSettings.tls``); None guesses it from
    the URL and the client's options, which misses Sentinel with only --tls-insecure.
    """
    guessed = url.lower().startswith("rediss://")
    tls = dict(tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key, tls_insecure=tls_insecure,
               connect_timeout_s=min(timeout_s, 5.0), timeout_s=timeout_s)
    if hasattr(client, "get_primaries"):
        manager = client.nodes_manager
        kw = manager.connection_kwargs
        primaries = sorted(client.get_primaries(), key=lambda n: n.name)
        index = {node.name: i for i, node in enumerate(primaries)}
        endpoints = tuple(Endpoint(
            host=str(node.host), port=int(node.port), username=kw.get("username"),
            password=kw.get("password"), tls=guessed if use_tls is None else use_tls,
            **tls) for node in primaries)  # type: ignore[arg-type]
        slot_nodes = tuple(index.get(manager.slots_cache[slot][0].name, 0)
                           if manager.slots_cache.get(slot) else 0 for slot in range(16384))
        return BenchTarget(endpoints, slot_nodes)
    pool = client.connection_pool
    kw = pool.connection_kwargs
    host, port = kw.get("host", "127.0.0.1"), kw.get("port", 6379)
    if hasattr(pool, "get_master_address"):
        host, port = pool.get_master_address()
    return BenchTarget((Endpoint(
        host=str(host), port=int(port), unix_path=kw.get("path"), db=int(kw.get("db") or 0),
        username=kw.get("username"), password=kw.get("password"),
        tls=(guessed or "ssl_certfile" in kw or "ssl_ca_certs" in kw) if use_tls is None else use_tls,
        **tls),))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- running


@dataclass
class _Prepared:
    """A namespace's keys, ready to be read (and written, in mixed mode)."""

    ns: Namespace
    keys: list[bytes]
    reads: list[bytes]
    values: list[bytes]
    key_source: str
    value_size_source: str
    sizes: list[int] = field(default_factory=list)
    written: int = 0
    origin: OriginResult | None = None
    origin_rows: list[dict[str, Any]] = field(default_factory=list)
    origin_source: OriginSource | None = None


def run_bench(client: Any, target: BenchTarget, policy: Policy, config: BenchConfig, *,
              server: str = "", on_progress: ProgressCallback = no_progress) -> BenchResult:
    """Benchmark every namespace and mode in ``config``; keys are removed unless ``keep``.

    Redis side effects: without ``existing``, SET (with a TTL) and finally UNLINK of
    keys under ``<key_prefix>:cachectl:bench:``; with it, reads only. Raises
    UsageError, RedisUnavailableError, SourceError, and InterruptedWork (Ctrl-C) after
    the benchmark keys are removed.
    """
    config.validate()
    names = config.namespaces or tuple(policy.namespaces)
    namespaces = [policy.namespace(n) for n in names]
    if not namespaces:
        raise UsageError("the policy has no namespaces to benchmark")
    rng = random.Random(config.seed)
    parallel = config.parallel
    if parallel == "auto":
        # threads measured closer to redis-benchmark than processes on 2 cores, and start
        # at once; processes stay available for many-core machines
        parallel = "threads"
    runs: list[RunResult] = []
    written: list[bytes] = []
    written_count = 0
    removed = 0
    interrupted = False
    try:
        for ns in namespaces:
            # keys are registered for removal before the first one is written
            prep = _prepare(client, policy, ns, config, rng, on_progress, written.extend)
            written_count += prep.written
            for mode in config.modes:
                runs.append(_run_one(prep, policy, mode, config, target, rng, parallel,
                                     on_progress, server))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if written and not config.keep:
            removed = bench_keys_mod.unlink_keys(client, written)
    result = BenchResult(server=server, parallelism=parallel, runs=tuple(runs),
                         keys_written=written_count, keys_removed=removed, kept=config.keep,
                         interrupted=interrupted)
    if interrupted:
        raise InterruptedWork(
            "benchmark interrupted" + (f"; its {removed:,} keys were removed"
                                       if written and not config.keep else ""),
            partial=result, hint="rerun to benchmark again; nothing needs cleaning up"
            if not config.keep else "the benchmark keys expire by their TTL")
    return result


def _prepare(client: Any, policy: Policy, ns: Namespace, config: BenchConfig,
             rng: random.Random, on_progress: ProgressCallback,
             register: Callable[[list[bytes]], None]) -> _Prepared:
    source: OriginSource | str | None = None
    if config.origin:
        source = origin_source(ns, policy.base_dir, config.source_env)
    if config.existing:
        sample = bench_keys_mod.sample_existing(client, ns, config.keys)
        keys = [k for k, _, _ in sample]
        reads = [encode(*bench_keys_mod.READ_COMMANDS[t][:1], k,
                        *bench_keys_mod.READ_COMMANDS[t][1:]) for k, t, _ in sample]
        sizes = [s for _, _, s in sample]
        prep = _Prepared(ns, keys, reads, [], "existing",
                         f"{len(sizes)} existing keys" if sizes else "no keys", sizes=sizes)
        _attach_origin(prep, ns, source, config)
        return prep
    rows: Sequence[Mapping[str, object]]
    if isinstance(source, OriginSource):
        found = source_rows(ns, source, config.keys)
        prep_rows: list[dict[str, Any]] = found
        rows = [{n: r[n] for n in ns.template.placeholders} for r in found]
        values = [row_value(ns, r) for r in found]
        key_source, size_source = "warm source", f"rows of {source.display}"
    else:
        prep_rows = []
        vsizes = (bench_keys_mod.ValueSizes((config.value_size,), "--value-size")
                  if config.value_size is not None
                  else bench_keys_mod.sample_value_sizes(client, ns))
        sizes = [vsizes.for_key(i) for i in range(config.keys)]
        key_bytes = len(bench_keys_mod.bench_prefix(policy, ns)) + len(ns.template.source) + 8
        _check_write_volume(ns, config.keys, config.keys * key_bytes + sum(sizes))
        rows = bench_keys_mod.synthetic_rows(ns, config.keys)
        shared: dict[int, bytes] = {}  # one bytes object per distinct size
        values = [shared.get(n) or shared.setdefault(n, bench_keys_mod.make_value(n))
                  for n in sizes]
        key_source, size_source = "generated", vsizes.source
    keys = bench_keys_mod.bench_keys(policy, ns, rows)
    values = values[:len(keys)]
    payload = sum(len(k) + len(v) for k, v in zip(keys, values, strict=True))
    _check_write_volume(ns, len(keys), payload)
    check_headroom(client, ns, len(keys), payload)
    min_ttl_ms = _min_ttl_ms(config, len(config.modes))
    prep = _Prepared(ns, keys, [encode("GET", k) for k in keys], values, key_source, size_source,
                     sizes=[len(v) for v in values])
    register(keys)
    prep.written = bench_keys_mod.load_keys(client, ns, keys, values, min_ttl_ms=min_ttl_ms,
                                            rng=rng, on_progress=on_progress,
                                            task=f"{ns.name}: load")
    prep.origin_rows = prep_rows
    _attach_origin(prep, ns, source, config)
    return prep


def _check_write_volume(ns: Namespace, keys: int, payload_bytes: int) -> None:
    """UsageError when the benchmark keys would take more than MAX_WRITE_BYTES."""
    planned = payload_bytes + keys * _KEY_OVERHEAD_BYTES
    if planned > MAX_WRITE_BYTES:
        from cachectl.policy.units import format_size_bytes

        raise UsageError(
            f"benchmarking {ns.name} would write ~{format_size_bytes(planned)} "
            f"({keys:,} keys); bench writes at most {format_size_bytes(MAX_WRITE_BYTES)} "
            "per namespace, so its keys cannot push application keys out of the cache",
            hint="lower --keys or --value-size, or read real keys with --existing")


# bench may use at most this share of the memory left below maxmemory (the rest is the
# application's to grow into while the benchmark runs)
HEADROOM_SHARE = 0.5


def check_headroom(client: Any, ns: Namespace, keys: int, payload_bytes: int) -> None:
    """UsageError when writing the benchmark keys could make a node evict (or, under
    ``noeviction``, refuse) application keys: the planned bytes against each primary's
    ``maxmemory - used_memory`` (INFO memory). A server without maxmemory has no limit, and
    neither has one that does not answer INFO memory (the embedded server of ``demo``)."""
    import redis.exceptions as rex

    from cachectl.connection import primaries
    from cachectl.policy.units import format_size_bytes

    planned = payload_bytes + keys * _KEY_OVERHEAD_BYTES
    nodes = primaries(client)
    per_node = planned / max(1, len(nodes))  # keys spread over the primaries by slot
    for node in nodes:
        try:
            info = node.info("memory")
        except rex.ResponseError:  # unknown command: nothing to measure, nothing refused
            continue
        limit = int(info.get("maxmemory", 0) or 0)
        if limit <= 0:
            continue
        free = max(0, limit - int(info.get("used_memory", 0)))
        if per_node <= free * HEADROOM_SHARE:
            continue
        # 10 % below the bound: --keys N may load a few more keys than N (hot sets)
        fits = int(0.9 * keys * free * HEADROOM_SHARE / per_node) if per_node else 0
        policy = info.get("maxmemory_policy", "?")
        policy = policy.decode() if isinstance(policy, bytes) else str(policy)
        consequence = ("refuse writes (OOM)" if policy == "noeviction"
                       else f"evict application keys ({policy})")
        raise UsageError(
            f"benchmarking {ns.name} would write ~{format_size_bytes(round(planned))} "
            f"({keys:,} keys), but the server has {format_size_bytes(free)} left below "
            f"maxmemory {format_size_bytes(limit)}: at maxmemory it would {consequence}",
            hint=(f"--keys {fits} fits in half of what is free" if fits >= 1 else
                  "the server is full: benchmark with --existing (reads only)")
            + ", or use --existing to read real keys without writing")


def _min_ttl_ms(config: BenchConfig, modes: int) -> int:
    """Loaded keys outlive the runs (10 min at least), then expire if cleanup never runs."""
    per_run = (config.duration_ms or 60_000) + config.warmup_ms
    return max(600_000, modes * per_run * 2)


def _attach_origin(prep: _Prepared, ns: Namespace, source: OriginSource | str | None,
                   config: BenchConfig) -> None:
    if source is None:
        return
    if isinstance(source, str):
        prep.origin = OriginResult(source="-", timed=False, reason=source, hit_rate=ns.hit_rate,
                                   origin_calls_saved=ns.hit_rate)
        return
    prep.origin_source = source
    rows = prep.origin_rows or source_rows(ns, source, config.keys)
    prep.origin_rows = rows
    if not rows:
        prep.origin = OriginResult(source=source.display, timed=False,
                                   reason="no row of the source fills the key template",
                                   hit_rate=ns.hit_rate, origin_calls_saved=ns.hit_rate)


def _hot_set(n: int) -> int:
    return max(1, min(n, HOT_KEYS_MAX, max(10, n // 100)))


def _run_one(prep: _Prepared, policy: Policy, mode: BenchMode, config: BenchConfig,
             target: BenchTarget, rng: random.Random, parallel: str,
             on_progress: ProgressCallback, server: str) -> RunResult:
    ns = prep.ns
    # hot mode reads hot data; a namespace marked `hot: true` is hot data in every mode
    hot_data = mode is BenchMode.HOT or ns.hot
    threshold = "latency_hot_p99_ms" if hot_data else "latency_cached_p99_ms"
    limit = (policy.thresholds.latency_hot_p99_ms if hot_data
             else policy.thresholds.latency_cached_p99_ms)
    n = len(prep.keys)
    working = _hot_set(n) if mode is BenchMode.HOT else n
    reads = prep.reads[:working]
    writes: list[list[bytes]] = []
    if mode is BenchMode.MIXED:
        writes = [[encode("SET", k, v, "PX", write_ttl_ms(ns, rng)) for _ in range(_TTL_VARIANTS)]
                  for k, v in zip(prep.keys[:working], prep.values[:working], strict=True)]
    base = dict(namespace=ns.name, mode=mode, key_source=prep.key_source, keys=n,
                working_set=working, value_size_source=prep.value_size_source,
                clients=config.clients, pipeline=config.pipeline,
                distribution=str(config.distribution),
                read_ratio=config.read_ratio if mode is BenchMode.MIXED else None,
                threshold=threshold, threshold_p99_ms=limit)
    sized = prep.sizes[:working]
    value_mean = sum(sized) / len(sized) if sized else 0.0
    if not reads:
        return RunResult(verdict=Verdict.SKIP, reasons=(f"no keys of {ns.name} to read",),
                         value_bytes_mean=value_mean, requests=0, reads=0, misses=0, errors=0,
                         timeouts=0, seconds=0.0, throughput_rps=0.0,
                         latency=LatencyHistogram().percentiles(), origin=prep.origin,
                         **base)  # type: ignore[arg-type]
    seed = rng.randrange(1 << 30)
    key_nodes = ([target.node_of(k) for k in prep.keys[:working]]
                 if target.slot_nodes is not None else None)
    plans = []
    for i in range(config.clients):
        share = None
        if config.requests is not None:
            share = config.requests // config.clients + (i < config.requests % config.clients)
            share = max(1, share)
        plans.append(WorkerPlan(
            endpoints=target.endpoints, key_nodes=key_nodes, reads=reads, writes=writes,
            read_ratio=config.read_ratio,
            cdf=config.distribution.cdf(working), pipeline=config.pipeline,
            warmup_ns=config.warmup_ms * 1_000_000,
            duration_ns=None if config.requests is not None else (config.duration_ms or 0) * 1_000_000,
            requests=share, seed=seed + i))
    task = f"{ns.name}: {mode.value}"
    reports = execute(plans, parallel, lambda done: on_progress(task, done, config.requests))
    hist = LatencyHistogram()
    for r in reports:
        hist.merge(LatencyHistogram.from_state(r.histogram))
    denied = next((r.fatal for r in reports if r.denied), None)
    if denied is not None:
        raise RedisUnavailableError(
            f"{server or 'the server'}: permission denied: {denied}",
            hint="the ACL user lacks a permission bench needs; see docs/topologies.md, 'Least-privilege ACL'")
    fatal = [r.fatal for r in reports if r.fatal]
    if fatal and all(r.requests == 0 for r in reports):
        raise RedisUnavailableError(f"the benchmark clients could not use the server: {fatal[0]}",
                                    hint="check the URL, password and that the server is up")
    requests = sum(r.requests for r in reports)
    errors = sum(r.errors for r in reports) + sum(1 for r in reports if r.fatal)
    timeouts = sum(r.timeouts for r in reports)
    seconds = max((r.elapsed_ns for r in reports), default=0) / 1e9
    latency = hist.percentiles()
    reasons = []
    if requests == 0:
        reasons.append("no request completed")
    if latency.p99_ms > limit:
        reasons.append(f"p99 {latency.p99_ms:.3g} ms > {limit:g} ms ({threshold})")
    if errors or timeouts:
        reasons.append(f"{errors} errors, {timeouts} timeouts")
    first_error = next((r.first_error or r.fatal for r in reports if r.first_error or r.fatal),
                       None)
    origin = _origin_result(prep, latency) if config.origin else None
    return RunResult(
        verdict=Verdict.FAIL if reasons else Verdict.PASS, reasons=tuple(reasons),
        value_bytes_mean=value_mean, requests=requests, reads=sum(r.reads for r in reports),
        misses=sum(r.misses for r in reports), errors=errors, timeouts=timeouts,
        seconds=seconds, throughput_rps=requests / seconds if seconds else 0.0,
        latency=latency, first_error=first_error, origin=origin, histogram=hist,
        **base)  # type: ignore[arg-type]


def _origin_result(prep: _Prepared, cached: Percentiles) -> OriginResult | None:
    if prep.origin is not None or prep.origin_source is None:
        return prep.origin
    ns = prep.ns
    hist, missing = time_origin(ns, prep.origin_source, prep.origin_rows,
                                min(ORIGIN_SAMPLES, max(20, len(prep.origin_rows))),
                                budget_ns=ORIGIN_BUDGET_NS)
    lat = hist.percentiles()
    h = ns.hit_rate
    origin_mean = lat.mean_ms
    # a read with the cache: a hit costs the cached read; a miss the cached read plus the origin
    with_cache = cached.mean_ms + (1 - h) * origin_mean
    return OriginResult(
        source=prep.origin_source.display, timed=True, samples=lat.count, missing_rows=missing,
        latency=lat, speedup_p50=(lat.p50_ms / cached.p50_ms) if cached.p50_ms else None,
        hit_rate=h, origin_calls_saved=h,
        faster_at_hit_rate=(1 - with_cache / origin_mean) if origin_mean else None)


# --------------------------------------------------------------------------- executors


def execute(plans: Sequence[WorkerPlan], parallel: str,
            on_tick: Callable[[int], None]) -> list[WorkerReport]:
    """Run one worker per plan (threads or processes) from a common start; their reports."""
    if parallel == "processes":
        return _execute_processes(plans, on_tick)
    return _execute_threads(plans, on_tick)


def _execute_threads(plans: Sequence[WorkerPlan],
                     on_tick: Callable[[int], None]) -> list[WorkerReport]:
    control = [0, 0]
    progress = [0] * len(plans)
    reports: list[WorkerReport | None] = [None] * len(plans)

    def target(i: int) -> None:
        reports[i] = run_worker(plans[i], i, control, progress)

    threads = [threading.Thread(target=target, args=(i,), daemon=True, name=f"bench-{i}")
               for i in range(len(plans))]
    for t in threads:
        t.start()
    try:
        _start_when_ready(control, progress, lambda i: not threads[i].is_alive())
        while any(t.is_alive() for t in threads):
            on_tick(sum(max(0, p) for p in progress))
            alive = [t for t in threads if t.is_alive()]
            if alive:
                alive[0].join(timeout=0.1)
    except KeyboardInterrupt:
        control[CTRL_STOP] = 1
        for t in threads:
            t.join()
        raise
    on_tick(sum(max(0, p) for p in progress))
    return [r for r in reports if r is not None]


def _execute_processes(plans: Sequence[WorkerPlan],
                       on_tick: Callable[[int], None]) -> list[WorkerReport]:
    # spawn: a fresh interpreter per client, never a fork of a process with threads
    ctx = multiprocessing.get_context("spawn")
    control = ctx.RawArray("q", 2)
    progress = ctx.RawArray("q", len(plans))
    results: Any = ctx.Queue()
    procs = [ctx.Process(target=process_main, args=(plans[i], i, control, progress, results),
                         daemon=True, name=f"cachectl-bench-{i}") for i in range(len(plans))]
    for p in procs:
        p.start()
    reports: dict[int, WorkerReport] = {}
    try:
        _start_when_ready(control, progress, lambda i: procs[i].exitcode is not None)
        while len(reports) < len(procs):
            try:
                i, report = results.get(timeout=0.1)
                reports[i] = report
            except queue.Empty:
                if all(p.exitcode is not None for p in procs) and results.empty():
                    break
            on_tick(sum(max(0, p) for p in progress))
    except KeyboardInterrupt:
        control[CTRL_STOP] = 1
        raise
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join()
        results.close()
    for i, p in enumerate(procs):
        if i not in reports:
            reports[i] = WorkerReport(histogram=LatencyHistogram().to_state(),
                                      fatal=f"client process exited with code {p.exitcode}")
    on_tick(sum(max(0, p) for p in progress))
    return [reports[i] for i in range(len(procs))]


def _start_when_ready(control: Any, progress: Any, finished: Callable[[int], bool]) -> None:
    """Wait until every worker is connected (or gone), then give the common start."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    n = len(progress)
    while not all(progress[i] == -1 or finished(i) for i in range(n)):
        if time.monotonic() > deadline:
            control[CTRL_STOP] = 1
            raise RedisUnavailableError("the benchmark clients did not connect within "
                                        f"{_READY_TIMEOUT_S:.0f} s")
        time.sleep(0.005)
    control[CTRL_START_NS] = time.perf_counter_ns()
