"""``AsyncCache``: the same cache on redis.asyncio, for one event loop.

Same states, counters, breaker, fail-safe and L1 as ``Cache`` (sync.py); loaders may be
plain or async callables. Background work (counter writer, L1 subscriber, revalidation)
runs as tasks of the loop that first uses the cache; ``await cache.close()`` (or
``async with``) ends them all.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import redis.asyncio as aredis
import redis.exceptions as rex

from cachectl.cache.base import (
    FOLLOW_AGREE_S,
    FOLLOW_RETRY_MAX_S,
    FOLLOW_RETRY_S,
    SWITCH_MASTER,
    CacheBase,
    sentinel_pool,
    switch_target,
)
from cachectl.cache.core import (
    READ_SCRIPT,
    RELEASE_SCRIPT,
    Action,
    CacheOptions,
    LoadTimeoutError,
    build_options,
    check_size,
    decide,
    fallback_expiry_ms,
    invalidation_message,
    l1_expiry_ms,
    new_token,
    pack_get_pttl,
    placeholder_binder,
    resolve_policy,
)
from cachectl.cache.local import MISSING
from cachectl.cache.sync import RECENT_LOADS, UNLINK_BATCH, lib_settings
from cachectl.connection import (
    ConnectionSettings,
    build_settings,
    client_kwargs,
    create_client,
    detect_cluster,
    sentinel_kwargs,
)
from cachectl.counters import write_buckets
from cachectl.errors import RedisUnavailableError
from cachectl.freshness import Freshness, classify, write_ttl_ms
from cachectl.policy.model import Namespace, Policy

T = TypeVar("T")
# RedisClusterException (e.g. SlotNotCoveredError mid-failover) is not a RedisError
REDIS_ERRORS = (rex.RedisError, rex.RedisClusterException, OSError, asyncio.TimeoutError)
Loader = Callable[[], Any]  # returns a value or an awaitable of one


class _Throttled(Exception):
    """The flight ended without a value: serve the fail-safe value (internal)."""


def create_async_client(settings: ConnectionSettings, max_connections: int | None = None) -> Any:
    """A redis.asyncio client with the settings ``create_client`` gives the sync one."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    kwargs = client_kwargs(settings)
    kwargs["retry"] = Retry(NoBackoff(), settings.retries)
    if settings.sentinels:
        from redis.asyncio.sentinel import Sentinel

        for_sentinels, for_primary = sentinel_kwargs(settings, kwargs)  # TLS, ACL user
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.sentinels), sentinel_kwargs=for_sentinels, **for_primary)
        return sentinel.master_for(settings.master_name or "mymaster")
    if settings.cluster:
        from redis.asyncio.cluster import RedisCluster

        kwargs.pop("retry_on_error", None)
        kwargs.pop("health_check_interval", None)
        return RedisCluster.from_url(settings.url, **kwargs)
    if max_connections is not None:
        kwargs["max_connections"] = max_connections
    return aredis.Redis.from_url(settings.url, **kwargs)


def _by_slot(keys: list[bytes]) -> list[list[bytes]]:
    from redis.crc import key_slot

    groups: dict[int, list[bytes]] = {}
    for k in keys:
        groups.setdefault(key_slot(k), []).append(k)
    return list(groups.values())


async def _call_loader(loader: Loader) -> Any:
    result = loader()
    if inspect.isawaitable(result):
        result = await result
    return result


class AsyncCache(CacheBase):
    """A policy-driven Redis cache for one asyncio event loop."""

    def __init__(self, policy: Policy, client: Any, options: CacheOptions | None = None,
                 *, owns_client: bool = False, settings: ConnectionSettings | None = None) -> None:
        super().__init__(policy, client, options, owns_client)
        self._settings = settings  # for the last counter write at interpreter exit
        self._l1_live = False
        self._direct = self.options.read_mode == "pipeline" and isinstance(client, aredis.Redis)
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._refresh_slots: asyncio.Semaphore | None = None
        self._stop: asyncio.Event | None = None
        self._started = False
        self._closed = False
        atexit.register(self._at_exit)

    @classmethod
    def from_policy(cls, path_or_policy: str | os.PathLike[str] | Policy, url: str | None = None,
                    *, client: Any = None, settings: ConnectionSettings | None = None,
                    env: Mapping[str, str] | None = None, **options: Any) -> AsyncCache:
        """An async cache for a policy; same arguments as ``Cache.from_policy``."""
        environ = env if env is not None else os.environ
        policy = resolve_policy(path_or_policy, environ)
        opts = build_options(None, options)
        owns = client is None
        lib = None
        if client is None:
            base = settings or build_settings(url_flag=url, env=environ,
                                              policy_url=policy.redis_url,
                                              policy_cluster=policy.cluster)
            # a URL naming a cluster node gets the cluster client (as the CLI's connect)
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

    async def get_or_load(self, namespace: str, loader: Loader, /, **params: object) -> Any:
        """The value for ``params``, from the cache or ``await loader()``; see Cache.get_or_load."""
        ns, key = self._keys.key(namespace, params)
        return await self._get_or_load(ns, key, loader)

    async def set(self, namespace: str, value: Any, /, **params: object) -> bool:
        """Store ``value`` with the namespace's TTL; False if Redis could not be used."""
        ns, key = self._keys.key(namespace, params)
        data = self._encode(ns, value)
        self._ensure_started()
        return await self._write(ns, key, value, data)

    async def invalidate(self, namespace: str, /, **params: object) -> bool:
        """Remove the key; False if Redis could not be used."""
        ns, key = self._keys.key(namespace, params)
        return await self._invalidate_key(ns, key)

    async def soft_invalidate(self, namespace: str, /, **params: object) -> bool:
        """Move the key into the stale band (PEXPIRE … LT); False if Redis could not be used."""
        ns, key = self._keys.key(namespace, params)
        pttl = self._soft_pttl(ns)
        self._forget_local(key)

        async def soften(c: Any) -> Any:
            return await self._then_publish(c, key, "PEXPIRE", key, pttl, "LT")

        return await self._call(ns.name, soften) is not MISSING

    async def invalidate_tag(self, tag: str) -> int:
        """Remove every key of every namespace tagged ``tag``; see Cache.invalidate_tag."""
        namespaces, names = self._forget_tag_locally(tag)
        removed = 0
        cluster = hasattr(self.client, "get_primaries")
        try:
            for ns in namespaces:
                regex = ns.template.regex
                async for batch in self._scan(ns.template.glob):
                    keys = [k for k in batch if regex.fullmatch(k)]
                    # on a cluster, one UNLINK per hash slot (routed by the client)
                    for group in (_by_slot(keys) if cluster else [keys]):
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
        """Decorate an async loader; its arguments fill the key's placeholders by name."""
        ns = self._keys.namespace(namespace)

        def decorate(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
            bind = placeholder_binder(fn, ns)

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> T:
                key = ns.template.render(bind(*args, **kwargs))
                return await self._get_or_load(ns, key, lambda: fn(*args, **kwargs))  # type: ignore[no-any-return]

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
        if not deltas:
            return True
        try:
            pipe = self.client.pipeline(transaction=False)
            write_buckets(pipe, self.policy.internal_prefix, deltas)
            await pipe.execute()
        except rex.TimeoutError:
            # sent, but no reply: the server may have applied it, so it is not sent again
            self._counters.discard(deltas)
            return False
        except REDIS_ERRORS:
            self._counters.restore(deltas)
            return False
        return True

    async def close(self) -> None:
        """Finish background work, write the last counters, end every task. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._at_exit)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._stop is not None:
            self._stop.set()
        for worker in self._workers:
            worker.cancel()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
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
        """Interpreter exit without close(): write the pending counters with a sync client."""
        if self._closed or not self.options.counters or self._settings is None:
            return
        deltas = self._counters.drain()
        if not deltas:
            return
        import redis as sync_redis

        try:
            client = create_client(self._settings)
            try:
                pipe = client.pipeline(transaction=False)
                write_buckets(pipe, self.policy.internal_prefix, deltas)
                pipe.execute()
            finally:
                client.close()
        except (sync_redis.RedisError, OSError):
            pass

    # ------------------------------------------------------------------ background tasks

    def _ensure_started(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        self._stop = asyncio.Event()
        self._refresh_slots = asyncio.Semaphore(self.options.refresh_workers)
        if self.options.counters:
            self._workers.append(asyncio.create_task(self._flush_loop(), name="cachectl-counters"))
        if self._l1 is not None:
            self._workers.append(asyncio.create_task(self._subscribe_loop(), name="cachectl-l1"))
        if sentinel_pool(self.client) is not None:
            self._workers.append(asyncio.create_task(self._follow_failovers(),
                                                     name="cachectl-sentinel"))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_loop(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.options.counters_interval_s)
                return
            except TimeoutError:
                pass
            if self._counters.has_pending and self._breaker.allow():
                if await self.flush_counters():
                    self._breaker.success()
                else:
                    self._breaker.failure()

    async def _subscribe_loop(self) -> None:
        assert self._l1 is not None and self._stop is not None
        pubsub: Any = None
        try:
            while not self._stop.is_set():
                try:
                    if pubsub is None:
                        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                        await pubsub.subscribe(self._keys.channel)
                        self._l1.clear()
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
                    await asyncio.sleep(0.2)
        finally:
            self._l1_live = False
            if pubsub is not None:
                await self._close_quietly(pubsub)

    async def _follow_failovers(self) -> None:
        """Through Sentinel: move the pool to a new primary the moment it is announced
        (see ``Cache._follow_failovers``)."""
        assert self._stop is not None
        pool = sentinel_pool(self.client)
        sentinels = list(pool.sentinel_manager.sentinels)
        turn = 0
        pause = FOLLOW_RETRY_S
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                pubsub = sentinels[turn % len(sentinels)].pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(SWITCH_MASTER)
                await pool.get_master_address()  # a switch made while nobody was listening
                pause = FOLLOW_RETRY_S
                while not self._stop.is_set():
                    target = switch_target(await pubsub.get_message(timeout=0.2),
                                           pool.service_name)
                    if target is not None:
                        # see Cache._follow_failovers: ask until the Sentinels agree
                        until = time.monotonic() + FOLLOW_AGREE_S
                        while (tuple(await pool.get_master_address()) != target
                               and time.monotonic() < until and not self._stop.is_set()):
                            await asyncio.sleep(0.1)
                        self._failovers_followed += 1
            except REDIS_ERRORS:
                turn += 1  # this Sentinel is gone (or refuses): follow the next one
                await asyncio.sleep(pause)
                pause = min(pause * 2, FOLLOW_RETRY_MAX_S)
            finally:
                if pubsub is not None:
                    await self._close_quietly(pubsub)

    @staticmethod
    async def _close_quietly(pubsub: Any) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await pubsub.aclose()

    # ------------------------------------------------------------------ the read path

    async def _get_or_load(self, ns: Namespace, key: str, loader: Loader) -> Any:
        self._ensure_started()
        name = ns.name
        generation = self._l1_generation
        value = self._l1_hit(ns, key)
        if value is not MISSING:
            return value
        read_at = time.monotonic()
        read = await self._read_guarded(ns, key)
        if read is None:
            value = self._fallback.get(key)
            if value is not MISSING:
                self._count(name, "fresh_hits")
                return value
            return await self._load(ns, key, loader, MISSING)
        raw, pttl = read
        mean = self._counters.mean_load_ms(name) if ns.early_refresh_beta else None
        d = decide(ns, raw, pttl, self._ser, mean, self._rng)
        action = d.action
        if action is Action.SERVE:
            self._count(name, "fresh_hits")
            if self._l1 is not None and generation == self._l1_generation:
                self._l1.put(key, d.value, l1_expiry_ms(ns, pttl, self.options), name)
            if d.early:
                self._schedule_refresh(ns, key, loader, pttl)
            return d.value
        if action is Action.SERVE_REFRESH:
            self._count(name, "stale_hits")
            self._schedule_refresh(ns, key, loader, None)
            return d.value
        if action is Action.LOAD_FAIL_SAFE:
            return await self._load(ns, key, loader, d.value, read_at)
        return await self._load(ns, key, loader, MISSING, read_at)

    async def _read_guarded(self, ns: Namespace, key: str) -> tuple[bytes | None, int] | None:
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
        value = await _call_loader(loader)
        self._counters.add_load(ns.name, int((time.perf_counter() - started) * 1e6))
        return value

    async def _load(self, ns: Namespace, key: str, loader: Loader, fail_safe: Any,
                    read_at: float | None = None) -> Any:
        name = ns.name
        flight = self._flights.get(key)
        if flight is not None:
            return await self._wait(ns, key, loader, flight, fail_safe)
        recent = self._recent.get(key)
        if recent is not None and read_at is not None and recent[0] >= read_at:
            self._count(name, "misses")
            return recent[1]
        flight = self._flights[key] = asyncio.get_running_loop().create_future()
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
            self._end_flight(key, flight, exc=exc)
            if isinstance(exc, _Throttled):
                self._count(name, "fail_safe_hits")
                return fail_safe
            raise
        self._end_flight(key, flight, value=value)
        return value

    async def _wait(self, ns: Namespace, key: str, loader: Loader, flight: asyncio.Future[Any],
                    fail_safe: Any) -> Any:
        name = ns.name
        soft = self.options.soft_timeout_ms
        timeout = soft if (fail_safe is not MISSING and soft) else self.options.hard_timeout_ms
        try:
            value = await asyncio.wait_for(asyncio.shield(flight), timeout / 1000.0)
        except TimeoutError:
            if fail_safe is not MISSING:
                self._count(name, "fail_safe_hits")
                return fail_safe
            self._count(name, "misses")
            raise LoadTimeoutError(
                f"waited {timeout:g} ms for another caller's load of this {name!r} key") from None
        except _Throttled:
            if fail_safe is MISSING:
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

    def _end_flight(self, key: str, flight: asyncio.Future[Any], *, value: Any = None,
                    exc: BaseException | None = None) -> None:
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
        """Reload a key in the fail-safe band (see Cache._lead_fail_safe)."""
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
            d = decide(ns, raw, int(pttl), self._ser, None, self._rng)
            if d.action is Action.SERVE or d.action is Action.SERVE_REFRESH:
                if acquired:
                    await self._release(name, lock_key, token, 0)
                self._count(name, "fresh_hits" if d.action is Action.SERVE else "stale_hits")
                return d.value
            if not acquired:
                raise _Throttled()
            held = True
        soft = self.options.soft_timeout_ms
        try:
            if soft:
                inner = asyncio.ensure_future(self._timed_load(ns, loader))
                try:
                    value = await asyncio.wait_for(asyncio.shield(inner), soft / 1000.0)
                except TimeoutError:
                    self._spawn(self._finish_late(ns, key, inner, lock_key if held else None,
                                                  token))
                    raise _Throttled() from None
            else:
                value = await self._timed_load(ns, loader)
        except _Throttled:
            raise
        except Exception:  # noqa: BLE001 - the loader is user code; anything it raises is a failed load
            self._count(name, "refresh_errors")
            if held:
                await self._release(name, lock_key, token, self.options.fail_safe_throttle_ms)
            raise _Throttled() from None
        self._count(name, "misses")
        await self._store_loaded(ns, key, value)
        if held:
            await self._release(name, lock_key, token, 0)
        return value

    async def _finish_late(self, ns: Namespace, key: str, inner: asyncio.Future[Any],
                           lock_key: str | None, token: str) -> None:
        try:
            value = await inner
        except Exception:  # noqa: BLE001 - a failed load, whatever it raised
            self._count(ns.name, "refresh_errors")
            if lock_key is not None:
                await self._release(ns.name, lock_key, token, self.options.fail_safe_throttle_ms)
            return
        self._count(ns.name, "refreshes")
        await self._store_loaded(ns, key, value)
        if lock_key is not None:
            await self._release(ns.name, lock_key, token, 0)

    async def _store_loaded(self, ns: Namespace, key: str, value: Any) -> None:
        data = self._ser.dumps(value)
        if check_size(ns, data):
            await self._write(ns, key, value, data)

    # ------------------------------------------------------------------ background refresh

    def _schedule_refresh(self, ns: Namespace, key: str, loader: Loader,
                          early_pttl: int | None) -> None:
        if key in self._refreshing or self._closed:
            return
        self._refreshing.add(key)
        self._spawn(self._refresh(ns, key, loader, early_pttl))

    async def _refresh(self, ns: Namespace, key: str, loader: Loader,
                       early_pttl: int | None) -> None:
        name = ns.name
        lock_key, token = self._keys.lock_key(key), new_token()
        assert self._refresh_slots is not None
        try:
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
                self._count(name, "refreshes")
                if early_pttl is not None:
                    self._count(name, "early_refreshes")
                await self._store_loaded(ns, key, value)
                await self._release(name, lock_key, token, 0)
        finally:
            self._refreshing.discard(key)

    async def _release(self, name: str, lock_key: str, token: str, keep_ms: int) -> None:
        await self._call(name, lambda c: self._script("_release_sha", RELEASE_SCRIPT, [lock_key],
                                                      token, keep_ms))

    # ------------------------------------------------------------------ writes

    async def _call(self, name: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """``await fn(client)`` through the breaker; MISSING (counted) when Redis is unusable."""
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

        Both in one pipeline on a standalone server. Not on a cluster: redis-py's async
        cluster pipeline refuses PUBLISH (RedisClusterException) and its ``unlink`` is a
        no-op coroutine (an invalidate said True and left the key), so there the command
        and the PUBLISH are two calls.
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
