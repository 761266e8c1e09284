"""A throwaway Sentinel deployment: one primary, one replica and 3 Sentinels (quorum 2).

Small ``down-after-milliseconds`` and ``failover-timeout`` so a failover (forced with
SENTINEL FAILOVER, or by killing the primary) completes in a few seconds. Every
process is stopped by ``stop()``.

``SentinelFixture(workdir, tls=files)`` makes every process TLS-only: the data nodes
and the Sentinels listen on ``tls-port`` with ``port 0``, replication and the Sentinels'
own connections use TLS (``tls-replication yes``), so nothing answers in clear text.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.support.redis_server import RedisServer, free_port, redis_server_binary
from tests.support.tls import TlsFiles, TlsServer

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


class SentinelError(RuntimeError):
    """The deployment did not reach the expected state in time."""


class SentinelProcess:
    """One ``redis-server --sentinel`` on a free port, with a writable config file."""

    def __init__(self, workdir: Path, monitored_port: int, quorum: int,
                 tls: TlsFiles | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.monitored_port = monitored_port
        self.quorum = quorum
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        if self.tls is not None:
            return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, ssl=True,
                               ssl_ca_certs=str(self.tls.ca))
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self, timeout_s: float = 10.0) -> SentinelProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "sentinel.conf"
        listen = f"port {self.port}\n"
        if self.tls is not None:
            listen = (f"port 0\ntls-port {self.port}\ntls-replication yes\n"
                      f"tls-cert-file {self.tls.server_cert}\n"
                      f"tls-key-file {self.tls.server_key}\n"
                      f"tls-ca-cert-file {self.tls.ca}\ntls-auth-clients no\n")
        conf.write_text(
            f"{listen}bind 127.0.0.1\ndir {self.workdir}\n"
            f"logfile {self.workdir / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.monitored_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self.proc = subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except redis.ConnectionError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise SentinelError(f"sentinel on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class SentinelFixture:
    """A primary, a replica and 3 Sentinels watching them as ``mymaster``."""

    def __init__(self, workdir: Path, sentinels: int = 3, quorum: int = 2,
                 extra_args: tuple[str, ...] = (), tls: TlsFiles | None = None) -> None:
        self.workdir = workdir
        self.tls = tls
        # shutdown-timeout 0: a primary must not wait for its replica when the test stops it
        args = ("--shutdown-timeout", "0", *extra_args)
        self.primary: RedisServer
        self.replica: RedisServer
        if tls is None:
            self.primary = RedisServer(workdir / "primary", *args)
            self.replica = RedisServer(workdir / "replica", "--replicaof", "127.0.0.1",
                                       str(self.primary.port), *args)
        else:
            args = ("--tls-replication", "yes", *args)
            self.primary = TlsServer(workdir / "primary", tls, *args)
            self.replica = TlsServer(workdir / "replica", tls, "--replicaof", "127.0.0.1",
                                     str(self.primary.port), *args)
        self.sentinels = [SentinelProcess(workdir / f"sentinel-{i}", self.primary.port, quorum,
                                          tls=tls)
                          for i in range(sentinels)]

    @property
    def master_name(self) -> str:
        return MASTER_NAME

    @property
    def sentinel_addrs(self) -> list[str]:
        """``host:port`` of every Sentinel (the form ``--sentinel`` takes)."""
        return [f"127.0.0.1:{s.port}" for s in self.sentinels]

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, self.replica]

    def start(self, timeout_s: float = 20.0) -> SentinelFixture:
        try:
            self.primary.start()
            self.replica.start()
            for sentinel in self.sentinels:
                sentinel.start()
            self._wait(self._ready, timeout_s, "replica synced and every Sentinel seeing it")
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.primary.stop()

    def current_primary_port(self) -> int:
        _host, port = self.sentinels[0].client().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(port)

    def current_primary(self) -> RedisServer:
        port = self.current_primary_port()
        return next(s for s in self.servers if s.port == port)

    def _ready(self) -> bool:
        primary = self.current_primary()
        info = primary.client().info("replication")
        if info.get("connected_slaves", 0) < 1:
            return False
        replica_info = info.get("slave0", {})
        if not isinstance(replica_info, dict) or replica_info.get("state") != "online":
            return False
        for sentinel in self.sentinels:
            c = sentinel.client()
            replicas = c.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
            if not replicas:
                return False
            sentinels_seen = c.execute_command("SENTINEL", "SENTINELS", MASTER_NAME)
            if len(sentinels_seen) < len(self.sentinels) - 1:
                return False
        return True

    def failover(self, timeout_s: float = 20.0) -> RedisServer:
        """Force a failover (SENTINEL FAILOVER) and wait until the old replica is primary."""
        old = self.current_primary()
        self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        new = self.wait_new_primary(old, timeout_s)
        # until the Sentinels demote it, the old primary still accepts writes (split brain);
        # they would send this REPLICAOF on their next 10 s INFO round: do it now
        old.client().execute_command("REPLICAOF", "127.0.0.1", new.port)
        self._wait(lambda: old.client().execute_command("ROLE")[0] == b"slave", timeout_s,
                   "the old primary to be demoted")
        return new

    def wait_new_primary(self, old: RedisServer, timeout_s: float = 20.0) -> RedisServer:
        """Wait until every Sentinel names another server and that server says it is primary."""
        def switched() -> bool:
            ports = {int(s.client().execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)[1]) for s in self.sentinels}
            if len(ports) != 1 or old.port in ports:
                return False
            new = next(s for s in self.servers if s.port in ports)
            return bool(new.client().execute_command("ROLE")[0] == b"master")

        self._wait(switched, timeout_s, "the Sentinels to promote the replica")
        return self.current_primary()

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary (the Sentinels notice after down-after-milliseconds)."""
        old = self.current_primary()
        old.kill()
        return old

    @staticmethod
    def _wait(predicate: object, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if predicate():  # type: ignore[operator]
                    return
            except (redis.RedisError, StopIteration):
                pass
            time.sleep(0.05)
        raise SentinelError(f"timed out after {timeout_s:g}s waiting for {what}")


def sentinel_fixture(tmp_path_factory: object) -> object:
    """Body of a module-scoped ``sentinel`` fixture: start, yield, always stop."""
    deployment = SentinelFixture(tmp_path_factory.mktemp("sentinel")).start()  # type: ignore[attr-defined]
    try:
        yield deployment
    finally:
        deployment.stop()


@dataclass
class FailoverRun:
    """What ``failover_under_traffic`` saw (see there)."""

    old: RedisServer
    new: RedisServer
    errors: list[BaseException] = field(default_factory=list)  # raised to a caller: never
    wrong: list[object] = field(default_factory=list)  # a value that was not the loader's
    calls_before: int = 0  # get_or_load calls served before the failover
    calls_after_failover: int = 0  # ... by the time the new primary was in place
    calls: int = 0  # ... in all
    stored: list[int] = field(default_factory=list)  # prices Cache.set said it stored after
    # the cache's connections still on the demoted primary once it followed the switch
    # (polled up to TRAFFIC_DEADLINE_S)
    left_on_old: int = -1
    followed: int = 0  # the cache's failovers_followed by then


# failover_under_traffic waits for this many calls at each step, each within the deadline
TRAFFIC_CALLS = 20
TRAFFIC_DEADLINE_S = 30.0


def _wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; the caller asserts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def library_connections(server: RedisServer) -> int:
    """How many connections the cachectl library (client name cachectl-lib) holds on ``server``."""
    return sum(1 for c in server.client().client_list() if c.get("name") == "cachectl-lib")


def failover_under_traffic(cache: Any, deployment: SentinelFixture) -> FailoverRun:
    """Serve ``product`` get_or_load traffic from a thread, fail the primary over, then
    ``set`` 20 prices (``price``, sku after-0..19); the cache is closed at the end."""
    stop = threading.Event()
    run = FailoverRun(old=deployment.current_primary(), new=deployment.current_primary())

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            pid = i % 50
            try:
                value = cache.get_or_load("product", lambda p=pid: {"id": p}, id=pid)
            except BaseException as exc:  # exactly what must never happen
                run.errors.append(exc)
                return
            if value != {"id": pid}:
                run.wrong.append(value)
            run.calls += 1
            i += 1
            time.sleep(0.002)

    def traffic_made(n: int) -> bool:
        # a stopped thread (an error) makes no more calls: stop waiting for it
        return run.calls >= n or not worker.is_alive()

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        # wait for the traffic itself, never a fixed time: a loaded host may start the
        # thread late (a fixed 0.3 s once saw no call at all)
        _wait_until(lambda: traffic_made(TRAFFIC_CALLS), TRAFFIC_DEADLINE_S)
        run.calls_before = run.calls
        run.new = deployment.failover()
        switched_at = run.calls
        _wait_until(lambda: traffic_made(switched_at + TRAFFIC_CALLS), TRAFFIC_DEADLINE_S)
        # the cache follows +switch-master asynchronously: give it until the deadline
        _wait_until(lambda: cache.failovers_followed >= 1 and library_connections(run.old) == 0,
                    TRAFFIC_DEADLINE_S)
        run.calls_after_failover = run.calls
        run.followed = cache.failovers_followed
        run.left_on_old = library_connections(run.old)
        # the old primary is a replica now: a write the cache says it stored must be on
        # the new primary (dbsize() > 0 alone held through replication of older keys)
        run.stored = [i for i in range(20) if cache.set("price", i, sku=f"after-{i}")]
        after = run.calls_after_failover
        _wait_until(lambda: traffic_made(after + TRAFFIC_CALLS), TRAFFIC_DEADLINE_S)
    finally:
        stop.set()
        worker.join(10)
        cache.close()
    return run
