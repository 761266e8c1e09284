"""The read-through cache, written once: ``AsyncCache`` here, ``Cache`` (sync.py) generated.

scripts/async_to_sync.py generates sync.py from this
module (``async``/``await`` removed, the names of _acompat.py mapped to their threaded
twins, ``if True:  # ASYNC`` blocks replaced by their ``else:``); a test fails when
sync.py is not current. Edit this file, run ``python scripts/async_to_sync.py``, commit
both.

One round trip per read (GET and PTTL sent together) tells which of the freshness
states (docs/library.md) a key is in. ``Cache`` is thread-safe: background work
(counter writer, L1 subscriber, Sentinel follower) runs in daemon threads and
revalidations in a small thread pool. ``AsyncCache`` is for one event loop: the same
work runs as tasks of the loop that first uses it, and loaders may be plain or async
callables. Close either (``close()``, or ``with`` / ``async with``) so the last
counters are written and the background work ends.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import inspect
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import redis.asyncio as aredis
import redis.exceptions as rex

from cachectl.cache._acompat import (
    ACancelledError,
    AEvent,
    AFuture,
    ASemaphore,
    aresult,
    aspawn,
    astop_workers,
)
from cachectl.cache.base import (
    FOLLOW_AGREE_S,
    FOLLOW_RETRY_MAX_S,
    FOLLOW_RETRY_S,
    RECENT_LOADS,
    REDIS_ERRORS,
    SWITCH_MASTER,
    UNLINK_BATCH,
    CacheBase,
    LeaderGone,
    Loader,
    Throttled,
    lib_settings,
    sentinel_pool,
    switch_target,
)
from cachectl.cache.clients import create_async_client
from cachectl.cache.core import (
    READ_SCRIPT,
    RELEASE_SCRIPT,
    Action,
    CacheOptions,
    build_options,
    fallback_expiry_ms,
    invalidation_message,
    l1_expiry_ms,
    new_token,
    pack_get_pttl,
    placeholder_binder,
    resolve_policy,
)
from cachectl.cache.local import MISSING
from cachectl.connection import ConnectionSettings, build_settings, create_client, detect_cluster
from cachectl.counter_format import write_buckets
from cachectl.errors import LoadTimeoutError, RedisUnavailableError
from cachectl.freshness import Freshness, classify, write_ttl_ms
from cachectl.policy.model import Namespace, Policy

T = TypeVar("T")


class AsyncCache(CacheBase):
    """A policy-driven Redis cache (``Cache``: for one process, thread-safe;
    ``AsyncCache``: for one asyncio event loop).

    Build it with ``from_policy("cachectl.yaml")``; close it (or use it as a context
    manager) so the last counters are written and its background work ends.
    """

    def __init__(self, policy: Policy, client: Any, options: CacheOptions | None = None,
                 *, owns_client: bool = False, settings: ConnectionSettings | None = None) -> None:
        super().__init__(policy, client, options, owns_client)
        self._settings = settings  # for the last counter write at interpreter exit
        self._l1_live = False  # subscribed: the L1 may be used
        self._direct = self.options.read_mode == "pipeline" and isinstance(client, aredis.Redis)
        # guards the flights, the recent loads and the refreshing set (never held across I/O)
        self._lock = threading.Lock()
        self._flights: dict[str, AFuture[Any]] = {}
        self._refresh_slots = ASemaphore(self.options.refresh_workers)
        self._stop = AEvent()
        self._started = False
        self._closed = False
        self._workers: list[Any] = []  # the background loops (tasks, or threads)
        if True:  # ASYNC
            self._tasks: set[asyncio.Task[Any]] = set()  # refreshes and late loads
        else:
            self._executor: ThreadPoolExecutor | None = None  # the refresh threads
        atexit.register(self._at_exit)
        if True:  # ASYNC
            pass  # no event loop yet: the background tasks start on first use
        else:
            self._ensure_started()

    @classmethod
    def from_policy(cls, path_or_policy: str | os.PathLike[str] | Policy, url: str | None = None,
                    *, client: Any = None, settings: ConnectionSettings | None = None,
                    env: Mapping[str, str] | None = None, **options: Any) -> AsyncCache:
        """A cache for the policy at ``path_or_policy`` (or a loaded Policy).

        The server: ``url``, else ``REDIS_URL`` in ``env`` (default: the process
        environment), else the policy's ``redis.url``. ``client`` uses an existing
        redis-py client instead. ``options`` are CacheOptions fields. Connects only to
        ask whether the URL names a cluster node (and, for a cluster, to read its slot
        map): a cache built while a standalone Redis is down works and uses Redis once
        it is back.
        Raises PolicyError (bad policy) or UsageError (unknown option).
        """
        environ = env if env is not None else os.environ
        policy = resolve_policy(path_or_policy, environ)
        opts = build_options(None, options)
        owns = client is None
        lib = None
        if client is None:
            base = settings or build_settings(url_flag=url, env=environ,
                                              policy_url=policy.redis_url,
                                              policy_cluster=policy.cluster)
            # a URL naming a cluster node gets the cluster client (as the CLI's connect):
            # a standalone client would get MOVED
            lib = detect_cluster(lib_settings(base, opts))
            client = create_async_client(lib, opts.max_connections)
        return cls(policy, client, opts, owns_client=owns, settings=lib)

    # ------------------------------------------------------------------ public API

    async def get(self, namespace: str, /, **params: object) -> Any:
        """The cached value if fresh or stale, else None (nothing is loaded)."""
        ns, key = self._keys.key(namespace, params)
        self._ensure_started()
        value = self._l1_hit(ns, key)
        if value is not MISSING:
            return value
        return self._answer_get(ns, key, await self._read_guarded(ns, key))

    # the sync signature is generic in the loader's type; the async one cannot be (a plain
    # or an async loader), so the two are spelled out
    if True:  # ASYNC

        async def get_or_load(self, namespace: str, loader: Loader, /, **params: object) -> Any:
            ns, key = self._keys.key(namespace, params)
            return await self._get_or_load(ns, key, loader, params)
    else:

        def get_or_load(self, namespace: str, loader: Callable[[], T], /, **params: object) -> T:
            ns, key = self._keys.key(namespace, params)
            return self._get_or_load(ns, key, loader, params)  # type: ignore[no-any-return,unused-ignore]

    get_or_load.__doc__ = """The value for ``params``: served from the cache, or ``loader()`` and stored.

        Fresh: returned. Stale: returned, revalidated in the background by one caller
        in the fleet. Fail-safe: reloaded, and returned only if the loader fails or
        times out. Gone: loaded in this caller (one load per key per process). The
        loader's exception propagates unchanged when no fail-safe value exists. A value
        the serializer cannot encode (or over ``max_value_bytes``) is returned, not
        stored, and counted as a refresh error. AsyncCache awaits the loader's result
        when it is awaitable.
        """

    async def set(self, namespace: str, value: Any, /, **params: object) -> bool:
        """Store ``value`` with the namespace's TTL; False if Redis could not be used.

        Raises ValueTooLargeError over ``max_value_bytes``.
        """
        ns, key = self._keys.key(namespace, params)
        data = self._encode(ns, value)
        self._ensure_started()
        return await self._write(ns, key, value, data)

    async def invalidate(self, namespace: str, /, **params: object) -> bool:
        """Remove the key (never served again, not even on error); False if Redis was unusable."""
        ns, key = self._keys.key(namespace, params)
        return await self._invalidate_key(ns, key)

    async def soft_invalidate(self, namespace: str, /, **params: object) -> bool:
        """Move the key into the stale band, as ``flush --soft`` does (its script).

        The next read serves it once more and revalidates it. False if Redis was unusable;
        UsageError for a namespace without a stale window.
        """
        from cachectl.flush.primitives import SOFTEN_SCRIPT  # the one soft-flush primitive

        ns, key = self._keys.key(namespace, params)
        pttl = self._soft_pttl(ns)
        self._forget_local(key)

        async def soften(c: Any) -> Any:
            softened = await self._script("_soften_sha", SOFTEN_SCRIPT, [key], pttl)
            if self._l1 is not None:
                await c.publish(self._keys.channel, invalidation_message(self._origin, [key]))
            return softened

        return await self._call(ns.name, soften) is not MISSING

    async def invalidate_tag(self, tag: str) -> int:
        """Remove every key of every namespace tagged ``tag``; the number of keys removed.

        The keys are found as flush finds them (the namespace's glob, then its exact
        matcher) and unlinked in batches, one UNLINK per hash slot on a cluster. Raises
        UsageError for a tag no namespace carries, RedisUnavailableError when Redis
        fails part way (the keys removed until then stay removed).
        """
        from cachectl.flush.primitives import keys_by_slot
        from cachectl.keyspace.scan import namespace_keys

        namespaces, names = self._forget_tag_locally(tag)
        removed = 0
        cluster = hasattr(self.client, "get_primaries")
        try:
            for ns in namespaces:
                async for batch in self._scan(ns.template.glob):
                    keys = namespace_keys(ns, batch)
                    for group in (keys_by_slot(keys).values() if cluster else [keys]):
                        removed += int(await self.client.unlink(*group)) if group else 0
            if self._l1 is not None:
                await self.client.publish(self._keys.channel,
                                          invalidation_message(self._origin, namespaces=names))
        except REDIS_ERRORS as exc:
            raise RedisUnavailableError(
                f"invalidate_tag({tag!r}) stopped after {removed} keys: {type(exc).__name__}",
                hint="Redis is unreachable or slow; run it again once Redis answers") from None
        return removed

    def cached(self, namespace: str) -> Callable[[Callable[..., Awaitable[T]]],
                                                 Callable[..., Awaitable[T]]]:
        """Decorate a loader: its arguments fill the key's placeholders by name.

        ``@cache.cached("product")`` on ``def product(id): ...``; the wrapper also has
        ``.invalidate(*args, **kwargs)``. Raises UsageError/KeyParamError at decoration.
        """
        ns = self._keys.namespace(namespace)

        def decorate(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
            bind = placeholder_binder(fn, ns)

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> T:
                params = bind(*args, **kwargs)
                key = ns.template.render(params)
                return await self._get_or_load(  # type: ignore[no-any-return]
                    ns, key, lambda: fn(*args, **kwargs), params)

            async def invalidate(*args: Any, **kwargs: Any) -> bool:
                return await self._invalidate_key(ns, ns.template.render(bind(*args, **kwargs)))

            wrapper.invalidate = invalidate  # type: ignore[attr-defined]
            return wrapper

        return decorate

    def _l1_subscribed(self) -> bool:
        return self._l1_live

    async def flush_counters(self) -> bool:
        """Write the pending counters now; False if Redis could not be used.

        Counters are kept for the next write when Redis refused or was unreachable, and
        dropped when the write timed out (it may have landed: never counted twice).
        """
        deltas = self._counters.drain()
        events = self._tracer.drain() if self._tracer is not None else []
        if not deltas and not events:
            return True
        try:
            pipe = self.client.pipeline(transaction=False)
            write_buckets(pipe, self.policy.internal_prefix, deltas)
            if events and self._tracer is not None:
                self._tracer.write(pipe, events)
            await pipe.execute()
        except rex.TimeoutError:
            # sent, but no reply: the server may have applied it, so it is not sent again
            self._counters.discard(deltas)
            self._lost(events)
            return False
        except REDIS_ERRORS:
            self._counters.restore(deltas)
            self._lost(events)  # trace events are dropped (counted), never queued for later
            return False
        return True

    def _lost(self, events: list[Any]) -> None:
        if events and self._tracer is not None:
            self._tracer.lost(events)

    async def close(self) -> None:
        """Finish background work, write the last counters, end every task and thread.

        Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._at_exit)
        if True:  # ASYNC
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        else:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
        self._stop.set()
        await astop_workers(self._workers)
        if self.options.counters:
            await self.flush_counters()
        if self._owns_client:
            await self.client.aclose()
            # through Sentinel: the clients that asked the Sentinels hold sockets too
            pool = getattr(self.client, "connection_pool", None)  # a cluster has none
            manager = getattr(pool, "sentinel_manager", None)
            for sentinel in getattr(manager, "sentinels", ()):
                await sentinel.aclose()

    async def __aenter__(self) -> AsyncCache:
        self._ensure_started()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _at_exit(self) -> None:
        """Interpreter exit without close(): write the pending counters."""
        if True:  # ASYNC
            # the loop is gone by now: write them with a sync client
            if self._closed or not self.options.counters or self._settings is None:
                return
            deltas = self._counters.drain()
            events = self._tracer.drain() if self._tracer is not None else []
            if not deltas and not events:
                return
            try:
                client = create_client(self._settings)
                try:
                    pipe = client.pipeline(transaction=False)
                    write_buckets(pipe, self.policy.internal_prefix, deltas)
                    if events and self._tracer is not None:
                        self._tracer.write(pipe, events)
                    pipe.execute()
                finally:
                    client.close()
            except REDIS_ERRORS:
                pass
        else:
            self.close()

    # ------------------------------------------------------------------ background work

    def _ensure_started(self) -> None:
        """Start the background loops (AsyncCache: on first use, inside the loop)."""
        if self._started or self._closed:
            return
        self._started = True
        if self.options.counters:
            self._workers.append(aspawn(self._flush_loop, name="cachectl-counters"))
        if self._l1 is not None:
            self._workers.append(aspawn(self._subscribe_loop, name="cachectl-l1"))
        if sentinel_pool(self.client) is not None:
            self._workers.append(aspawn(self._follow_failovers, name="cachectl-sentinel"))

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run ``fn(*args)`` in the background (a refresh, a late load): its task or
        future, or None once closed."""
        if True:  # ASYNC
            task = asyncio.ensure_future(fn(*args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return task
        else:
            with self._lock:
                if self._closed:
                    return None
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.options.refresh_workers,
                                                        thread_name_prefix="cachectl-refresh")
                executor = self._executor
            try:
                return executor.submit(fn, *args)
            except RuntimeError:  # shut down meanwhile
                return None

    async def _flush_loop(self) -> None:
        while not await self._stop.wait_timeout(self.options.counters_interval_s):
            pending = self._counters.has_pending or (self._tracer is not None
                                                      and self._tracer.pending)
            if pending and self._breaker.allow():
                if await self.flush_counters():
                    self._breaker.success()
                else:
                    self._breaker.failure()

    async def _subscribe_loop(self) -> None:
        """Drop L1 entries other instances changed; the L1 is off while not subscribed."""
        assert self._l1 is not None
        pubsub: Any = None
        try:
            while not self._stop.is_set():
                try:
                    if pubsub is None:
                        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                        await pubsub.subscribe(self._keys.channel)
                        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
                        self._l1.clear()  # messages sent while we were away are lost
                        self._l1_live = True
                    message = await pubsub.get_message(timeout=0.2)
                    if message is not None and message.get("type") == "message":
                        self._apply_invalidation(message["data"])
                except REDIS_ERRORS:
                    self._l1_live = False
                    self._l1.clear()
                    if pubsub is not None:
                        await self._close_quietly(pubsub)
                        pubsub = None
                    await self._stop.wait_timeout(0.2)
        finally:
            self._l1_live = False
            if pubsub is not None:
                await self._close_quietly(pubsub)

    async def _follow_failovers(self) -> None:
        """Through Sentinel: move the pool to a new primary the moment it is announced.

        redis-py asks the Sentinels where the primary is only when a connection
        (re)connects, so pooled connections kept reading from the demoted primary (a
        replica by then) and each failed one write with READONLY before it moved. Here one
        Sentinel at a time is followed on +switch-master; re-resolving the primary drops
        the pool's idle connections, and busy ones are dropped as they are returned.
        """
        pool = sentinel_pool(self.client)
        sentinels = list(pool.sentinel_manager.sentinels)
        turn = 0
        pause = FOLLOW_RETRY_S
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                pubsub = sentinels[turn % len(sentinels)].pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(SWITCH_MASTER)
                await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
                await pool.get_master_address()  # a switch made while nobody was listening
                pause = FOLLOW_RETRY_S
                while not self._stop.is_set():
                    target = switch_target(await pubsub.get_message(timeout=0.2),
                                           pool.service_name)
                    if target is not None:
                        # asking re-resolves the pool; the Sentinel asked may lag the one
                        # that announced it, so ask until it names the new primary
                        until = time.monotonic() + FOLLOW_AGREE_S
                        while (tuple(await pool.get_master_address()) != target
                               and time.monotonic() < until
                               and not await self._stop.wait_timeout(0.1)):
                            pass
                        self._failovers_followed += 1
            except REDIS_ERRORS:
                turn += 1  # this Sentinel is gone (or refuses): follow the next one
                await self._stop.wait_timeout(pause)
                pause = min(pause * 2, FOLLOW_RETRY_MAX_S)
            finally:
                if pubsub is not None:
                    await self._close_quietly(pubsub)

    @staticmethod
    async def _close_quietly(pubsub: Any) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await pubsub.aclose()

    # ------------------------------------------------------------------ the read path

    async def _get_or_load(self, ns: Namespace, key: str, loader: Loader,
                           params: Mapping[str, object] | None = None) -> Any:
        self._ensure_started()
        name = ns.name
        traced = self._tracer.sampled(key) if self._tracer is not None else None
        generation = self._l1_generation
        value = self._l1_hit(ns, key)
        if value is not MISSING:
            if traced is not None:
                self._record(name, traced, None, "fresh")
            return value
        read_at = time.monotonic()
        read = await self._read_guarded(ns, key)
        if read is None:
            return await self._fallback_load(ns, key, loader)
        raw, pttl = read
        mean = self._counters.mean_load_ms(name) if ns.early_refresh_beta else None
        d = self._decide(ns, raw, pttl, mean)
        action = d.action
        if action is Action.SERVE:
            self._count(name, "fresh_hits")
            if traced is not None:
                self._record(name, traced, len(raw or b""), "fresh")
            if self._l1 is not None and generation == self._l1_generation:
                self._l1.put(key, d.value, l1_expiry_ms(ns, pttl, self.options), name)
            if d.early:
                self._schedule_refresh(ns, key, loader, pttl)
            return d.value
        if action is Action.SERVE_REFRESH:
            self._count(name, "stale_hits")
            if traced is not None:
                self._record(name, traced, len(raw or b""), "stale")
            self._schedule_refresh(ns, key, loader, None)
            return d.value
        fail_safe = d.value if action is Action.LOAD_FAIL_SAFE else MISSING
        if fail_safe is MISSING and params is not None and ns.name in self._migrations:
            loader = self._previous_first(ns, params, loader)
        if traced is None:
            return await self._load(ns, key, loader, fail_safe, read_at)
        return await self._traced_load(ns, key, loader, fail_safe, read_at, traced, len(raw or b""))

    async def _traced_load(self, ns: Namespace, key: str, loader: Loader, fail_safe: Any,
                           read_at: float, traced: int, read_size: int) -> Any:
        """``_load`` of a traced key, recorded with the time the caller waited for it (a
        miss has the size just stored, a fail-safe answer the size it was read with)."""
        started = time.perf_counter()
        size: int | None = None
        outcome = "miss"
        try:
            value = await self._load(ns, key, loader, fail_safe, read_at)
            if fail_safe is not MISSING and value is fail_safe:
                outcome, size = "fail-safe", read_size
            return value
        finally:
            self._record(ns.name, traced, size, outcome, (time.perf_counter() - started) * 1000)

    def _previous_first(self, ns: Namespace, params: Mapping[str, object],
                        loader: Loader) -> Loader:
        """``loader`` preceded by one read of the key at version N-1: a value there is
        migrated and returned (the load stores it under N) and counted as a previous
        hit; else, or when Redis fails, the origin is asked as usual."""
        migrate = self._migrations[ns.name]

        async def load() -> Any:
            read = await self._read_guarded(ns, self._keys.previous_key(ns, params))
            old = self._previous_value(read)
            if old is not MISSING:
                self._count(ns.name, "previous_hits")
                return migrate(old)
            value = loader()
            if True:  # ASYNC
                if inspect.isawaitable(value):
                    value = await value
            return value

        return load

    async def _read_guarded(self, ns: Namespace, key: str) -> tuple[bytes | None, int] | None:
        """(value, PTTL) in one round trip, or None when Redis is unusable (counted)."""
        if not self._breaker.allow():
            self._count(ns.name, "redis_errors")
            return None
        try:
            read = await self._read(key)
        except REDIS_ERRORS as exc:
            return self._read_failed(ns, exc)
        self._breaker.success()
        return read

    async def _read(self, key: str) -> tuple[bytes | None, int]:
        if self._direct:
            # GET and PTTL written in one packet on one connection: a pipeline without
            # MULTI and without redis-py's Pipeline object (measured the fastest).
            pool = self.client.connection_pool
            conn = await pool.get_connection()
            try:
                await conn.send_packed_command([pack_get_pttl(key)])
                raw = await conn.read_response()
                pttl = await conn.read_response()
            except BaseException:
                await conn.disconnect()
                raise
            finally:
                await pool.release(conn)
            return raw, int(pttl)
        if self.options.read_mode == "lua":
            raw, pttl = await self._script("_read_sha", READ_SCRIPT, [key])
            return raw, int(pttl)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(key)
        pipe.pttl(key)
        raw, pttl = await pipe.execute()
        return raw, int(pttl)

    async def _script(self, attr: str, source: str, keys: list[str], *args: Any) -> Any:
        """EVALSHA ``source`` (its SHA kept in ``attr``), loading it on first use and
        again when the server lost it (a restart, SCRIPT FLUSH)."""
        sha = getattr(self, attr)
        if sha is None:
            sha = await self.client.script_load(source)
            setattr(self, attr, sha)
        try:
            return await self.client.evalsha(sha, len(keys), *keys, *args)
        except rex.NoScriptError:
            setattr(self, attr, await self.client.script_load(source))
            return await self.client.evalsha(getattr(self, attr), len(keys), *keys, *args)

    # ------------------------------------------------------------------ loading

    async def _timed_load(self, ns: Namespace, loader: Loader) -> Any:
        started = time.perf_counter()
        value = loader()
        if True:  # ASYNC
            if inspect.isawaitable(value):
                value = await value
        self._counters.add_load(ns.name, int((time.perf_counter() - started) * 1e6))
        return value

    async def _load(self, ns: Namespace, key: str, loader: Loader, fail_safe: Any,
                    read_at: float | None = None) -> Any:
        """Load a missing (or fail-safe) key once per process; other callers wait for it."""
        name = ns.name
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                recent = self._recent.get(key)
                if recent is not None and read_at is not None and recent[0] >= read_at:
                    leader = False  # loaded by someone else since our read began
                else:
                    flight = self._flights[key] = AFuture()
        if flight is None:
            self._count(name, "misses")
            return recent[1]  # type: ignore[index]
        if not leader:
            return await self._wait(ns, key, loader, flight, fail_safe)
        try:
            if fail_safe is not MISSING:
                value = await self._lead_fail_safe(ns, key, loader, fail_safe)
            else:
                try:
                    value = await self._timed_load(ns, loader)
                except Exception:
                    self._count(name, "refresh_errors")
                    self._count(name, "misses")
                    raise
                self._count(name, "misses")
                await self._store_loaded(ns, key, value)
        except BaseException as exc:
            # the loader's failure is shared with the callers waiting for it; the
            # leader's cancellation (a request timeout, a client that went away) is
            # not: one of them takes the load over
            self._end_flight(key, flight, exc=exc if isinstance(exc, Exception) else LeaderGone())
            if isinstance(exc, Throttled):
                self._count(name, "fail_safe_hits")
                return fail_safe
            raise
        self._end_flight(key, flight, value=value)
        return value

    async def _wait(self, ns: Namespace, key: str, loader: Loader, flight: AFuture[Any],
                    fail_safe: Any) -> Any:
        """Wait for the leader's load: its value, its error, or the fail-safe value."""
        name = ns.name
        soft = self.options.soft_timeout_ms
        timeout = soft if (fail_safe is not MISSING and soft) else self.options.hard_timeout_ms
        try:
            value = await aresult(flight, timeout / 1000.0)
        except TimeoutError:
            if not flight.done():  # we waited too long (else: the loader's own TimeoutError)
                if fail_safe is not MISSING:
                    self._count(name, "fail_safe_hits")
                    return fail_safe
                self._count(name, "misses")
                raise LoadTimeoutError(
                    f"waited {timeout:g} ms for another caller's load of this {name!r} key",
                    hint="raise hard_timeout_ms, or make the loader faster") from None
            if fail_safe is not MISSING:
                self._count(name, "fail_safe_hits")
                return fail_safe
            self._count(name, "misses")
            raise
        except LeaderGone:
            return await self._load(ns, key, loader, fail_safe)
        except Throttled:
            if fail_safe is MISSING:  # the key expired meanwhile: load it ourselves
                return await self._load(ns, key, loader, MISSING)
            self._count(name, "fail_safe_hits")
            return fail_safe
        except Exception:
            if fail_safe is not MISSING:
                self._count(name, "fail_safe_hits")
                return fail_safe
            self._count(name, "misses")
            raise
        self._count(name, "misses")
        return value

    def _end_flight(self, key: str, flight: AFuture[Any], *, value: Any = None,
                    exc: BaseException | None = None) -> None:
        with self._lock:
            self._flights.pop(key, None)
            if exc is None:
                self._recent[key] = (time.monotonic(), value)
                self._recent.move_to_end(key)
                if len(self._recent) > RECENT_LOADS:
                    self._recent.popitem(last=False)
        if flight.done():
            return
        if exc is not None:
            flight.set_exception(exc)
            flight.exception()  # retrieved: no "never retrieved" warning without waiters
        else:
            flight.set_result(value)

    async def _lead_fail_safe(self, ns: Namespace, key: str, loader: Loader,
                              fail_safe: Any) -> Any:
        """Reload a key in the fail-safe band; raise Throttled to serve ``fail_safe``.

        The fleet-wide lock makes one caller reload; it is kept for
        ``fail_safe_throttle_ms`` after a failure, so a failing origin sees one attempt
        per throttle period. The key's TTL is never extended: ``stale_if_error`` stays
        the hard bound and every reader decodes the same state.
        """
        name = ns.name
        lock_key, token = self._keys.lock_key(key), new_token()

        async def lock_and_look(c: Any) -> Any:
            pipe = c.pipeline(transaction=False)
            pipe.set(lock_key, token, nx=True, px=self.options.lock_ttl_ms)
            pipe.get(key)
            pipe.pttl(key)
            return await pipe.execute()

        got = await self._call(name, lock_and_look)
        held = False
        if got is not MISSING:
            acquired, raw, pttl = got
            d = self._decide(ns, raw, int(pttl), None)
            if d.action is Action.SERVE or d.action is Action.SERVE_REFRESH:
                # reloaded by someone else since our read: serve that, load nothing
                if acquired:
                    await self._release(name, lock_key, token, 0)
                self._count(name, "fresh_hits" if d.action is Action.SERVE else "stale_hits")
                return d.value
            if not acquired:  # someone in the fleet is reloading it, or it is throttled
                raise Throttled()
            held = True
        soft = self.options.soft_timeout_ms
        try:
            inner = self._spawn(self._timed_load, ns, loader) if soft else None
            if inner is not None and soft:
                try:
                    value = await aresult(inner, soft / 1000.0)
                except TimeoutError:
                    self._finish_later(ns, key, inner, lock_key if held else None, token)
                    raise Throttled() from None
            else:
                value = await self._timed_load(ns, loader)
        except Throttled:
            raise
        except Exception:  # noqa: BLE001 - the loader is user code; anything it raises is a failed load
            self._count(name, "refresh_errors")
            if held:
                await self._release(name, lock_key, token, self.options.fail_safe_throttle_ms)
            raise Throttled() from None
        self._count(name, "misses")
        await self._store_loaded(ns, key, value)
        if held:
            await self._release(name, lock_key, token, 0)
        return value

    def _finish_later(self, ns: Namespace, key: str, inner: Any, lock_key: str | None,
                      token: str) -> None:
        """Store a load that outlived the soft timeout once it ends (a task awaits it; a
        thread's future calls back)."""
        if True:  # ASYNC
            self._spawn(self._finish_late, ns, key, inner, lock_key, token)
        else:
            inner.add_done_callback(lambda _: self._finish_late(ns, key, inner, lock_key, token))

    async def _finish_late(self, ns: Namespace, key: str, inner: AFuture[Any],
                           lock_key: str | None, token: str) -> None:
        """Store the late load's value (or re-arm the throttle on its error)."""
        try:
            value = await aresult(inner)
        except ACancelledError:  # the cache closed before it ran
            if lock_key is not None:
                await self._release(ns.name, lock_key, token, 0)
            return
        except Exception:  # noqa: BLE001 - a failed load, whatever it raised
            self._count(ns.name, "refresh_errors")
            if lock_key is not None:
                await self._release(ns.name, lock_key, token, self.options.fail_safe_throttle_ms)
            return
        if await self._store_loaded(ns, key, value):
            self._count(ns.name, "refreshes")
        if lock_key is not None:
            await self._release(ns.name, lock_key, token, 0)

    async def _fallback_load(self, ns: Namespace, key: str, loader: Loader) -> Any:
        """Redis is unusable: serve the in-process fallback store, else load (single-flight)."""
        value = self._fallback.get(key)
        if value is not MISSING:
            self._count(ns.name, "fresh_hits")
            return value
        return await self._load(ns, key, loader, MISSING)

    async def _store_loaded(self, ns: Namespace, key: str, value: Any) -> bool:
        """Write a loaded value; False (counted as a refresh error) when it cannot be
        stored: the serializer refuses it, or it is over max_value_bytes."""
        data = self._encode_loaded(ns, value)
        if data is None:
            self._count(ns.name, "refresh_errors")
            return False
        if self._tracer is not None:
            self._tracer.remember(key, len(data))
        await self._write(ns, key, value, data)
        return True

    # ------------------------------------------------------------------ background refresh

    def _schedule_refresh(self, ns: Namespace, key: str, loader: Loader,
                          early_pttl: int | None) -> None:
        with self._lock:
            if key in self._refreshing or self._closed:
                return
            self._refreshing.add(key)
        if self._spawn(self._refresh, ns, key, loader, early_pttl) is None:  # closed meanwhile
            with self._lock:
                self._refreshing.discard(key)

    async def _refresh(self, ns: Namespace, key: str, loader: Loader,
                       early_pttl: int | None) -> None:
        """Revalidate ``key`` if this caller wins the fleet-wide lock (nobody waits on it)."""
        name = ns.name
        lock_key, token = self._keys.lock_key(key), new_token()
        try:
            # at most refresh_workers at once (Cache: the pool has that many threads)
            async with self._refresh_slots:
                async def acquire(c: Any) -> Any:
                    pipe = c.pipeline(transaction=False)
                    pipe.set(lock_key, token, nx=True, px=self.options.lock_ttl_ms)
                    pipe.pttl(key)
                    return await pipe.execute()

                got = await self._call(name, acquire)
                if got is MISSING or not got[0]:
                    return
                pttl = int(got[1])
                # someone refreshed it between our read and the lock: nothing to do
                already = (classify(pttl, ns) is Freshness.FRESH if early_pttl is None
                           else pttl > early_pttl)
                if already:
                    await self._release(name, lock_key, token, 0)
                    return
                try:
                    value = await self._timed_load(ns, loader)
                except Exception:  # noqa: BLE001 - a failed background load, whatever it raised
                    self._count(name, "refresh_errors")
                    await self._release(name, lock_key, token, self.options.fail_safe_throttle_ms)
                    return
                if await self._store_loaded(ns, key, value):
                    self._count(name, "refreshes")
                    if early_pttl is not None:
                        self._count(name, "early_refreshes")
                await self._release(name, lock_key, token, 0)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    async def _release(self, name: str, lock_key: str, token: str, keep_ms: int) -> None:
        await self._call(name, lambda c: self._script("_release_sha", RELEASE_SCRIPT, [lock_key],
                                                      token, keep_ms))

    # ------------------------------------------------------------------ writes

    async def _call(self, name: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """``fn(client)`` through the breaker; MISSING (and counted) when Redis is unusable."""
        if not self._breaker.allow():
            self._count(name, "redis_errors")
            return MISSING
        try:
            result = await fn(self.client)
        except REDIS_ERRORS:
            self._breaker.failure()
            self._count(name, "redis_errors")
            return MISSING
        self._breaker.success()
        return result

    async def _write(self, ns: Namespace, key: str, value: Any, data: bytes) -> bool:
        ttl_ms = write_ttl_ms(ns, self._rng)
        self._forget_local(key)

        async def write(c: Any) -> Any:
            if self._l1 is None:
                return await c.set(key, data, px=ttl_ms)
            return await self._then_publish(c, key, "SET", key, data, "PX", ttl_ms)

        if await self._call(ns.name, write) is MISSING:
            self._fallback.put(key, value, fallback_expiry_ms(ns, self.options), ns.name)
            return False
        return True

    async def _invalidate_key(self, ns: Namespace, key: str) -> bool:
        self._forget_local(key)

        async def unlink(c: Any) -> Any:
            return await self._then_publish(c, key, "UNLINK", key)

        return await self._call(ns.name, unlink) is not MISSING

    async def _then_publish(self, c: Any, key: str, *command: Any) -> Any:
        """Run ``command`` on ``key``, then (with an L1) PUBLISH its invalidation.

        Both in one pipeline on a standalone server. Not on a cluster: redis-py's
        cluster pipeline refuses PUBLISH (RedisClusterException, found by the cluster
        ACL test) and its async ``unlink`` is a no-op coroutine (an invalidate said
        True and left the key), so there the command and the PUBLISH are two calls.
        """
        message = invalidation_message(self._origin, [key])
        if hasattr(c, "get_primaries"):
            result = await c.execute_command(*command)
            if self._l1 is not None:
                await c.publish(self._keys.channel, message)
            return result
        pipe = c.pipeline(transaction=False)
        pipe.execute_command(*command)
        if self._l1 is not None:
            pipe.publish(self._keys.channel, message)
        return (await pipe.execute())[0]

    def _forget_local(self, key: str) -> None:
        self._fallback.discard((key,))
        with self._lock:
            self._recent.pop(key, None)
        if self._l1 is not None:
            self._l1_generation += 1
            self._l1.discard((key,))

    async def _scan(self, pattern: str) -> Any:
        """Batches of keys matching ``pattern`` on every primary (SCAN, never KEYS)."""
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= UNLINK_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
