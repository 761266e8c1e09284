"""The redis-py client each cache talks through: ``create_lib_client`` (sync) and
``create_async_client`` (redis.asyncio), built from the same settings.

Library settings (``lib_settings``) have short per-call timeouts and no retries: a slow
Redis counts as down and the breaker takes over. A standalone server gets a pool of
``max_connections`` (redis-py's default of 100 is too few for 100 threads plus the
background work).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aredis

from cachectl.connection import ConnectionSettings, client_kwargs, create_client, sentinel_kwargs


def create_lib_client(settings: ConnectionSettings, max_connections: int) -> Any:
    """A redis-py client: ``create_client``'s, with a larger pool for a standalone server."""
    if settings.cluster or settings.sentinels:
        return create_client(settings)
    return redis.Redis.from_url(settings.url, **client_kwargs(settings),
                                max_connections=max_connections)


def create_async_client(settings: ConnectionSettings, max_connections: int) -> Any:
    """A redis.asyncio client with the settings ``create_lib_client`` gives the sync one."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    kwargs = client_kwargs(settings)
    kwargs["retry"] = Retry(NoBackoff(), settings.retries)
    if settings.sentinels:
        from redis.asyncio.sentinel import Sentinel

        for_sentinels, for_primary = sentinel_kwargs(settings, kwargs)  # TLS, ACL user
        sentinel = Sentinel(
            list(settings.sentinels), sentinel_kwargs=for_sentinels, **for_primary)
        return sentinel.master_for(settings.master_name or "mymaster")
    if settings.cluster:
        from redis.asyncio.cluster import RedisCluster

        kwargs.pop("retry_on_error", None)
        kwargs.pop("health_check_interval", None)
        return RedisCluster.from_url(settings.url, **kwargs)
    return aredis.Redis.from_url(settings.url, **kwargs, max_connections=max_connections)
