"""The test harness itself: servers start on free ports, never 6379, and are isolated."""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests.support.redis_server import RedisServer


def test_session_server_is_never_the_machine_redis(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    assert redis_server.client().ping()


def test_each_test_starts_with_an_empty_server(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("harness:probe", "1", ex=60)
    assert redis_client.dbsize() == 1


def test_factory_servers_take_arguments(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory("--maxmemory", "10mb")
    assert server.client().config_get("maxmemory") == {"maxmemory": "10485760"}
