"""A throwaway Redis Cluster (3 primaries + 3 replicas) on free loopback ports.

Started from the installed ``redis-server`` with a small ``cluster-node-timeout`` so a
killed primary is replaced by its replica in a couple of seconds. Slots are assigned
directly (CLUSTER ADDSLOTSRANGE / MEET / REPLICATE), which is faster and quieter than
``redis-cli --cluster create``. Every process is stopped by ``stop()``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from tests.support.redis_server import RedisServer, free_port

SLOTS = 16384
NODE_TIMEOUT_MS = 1000


class ClusterError(RuntimeError):
    """The cluster did not reach the expected state in time."""


class RedisClusterFixture:
    """Six redis-server processes forming one cluster; ``url`` reaches any of them."""

    def __init__(self, workdir: Path, primaries: int = 3, replicas_per_primary: int = 1,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        count = primaries * (1 + replicas_per_primary)
        self.primaries_wanted = primaries
        self.bus_ports = [free_port() for _ in range(count)]
        self.nodes: list[RedisServer] = [
            RedisServer(
                workdir / f"node-{i}",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # an explicit bus port: the default (port + 10000) fails above 55535
                "--cluster-port", str(self.bus_ports[i]),
                "--cluster-replica-validity-factor", "0",  # any replica may be promoted
                "--cluster-require-full-coverage", "yes",
                "--shutdown-timeout", "0",  # do not wait for replicas when stopped
                *extra_args,
            )
            for i in range(count)
        ]

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> RedisClusterFixture:
        try:
            for node in self.nodes:
                node.start()
            self._form(timeout_s)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def _form(self, timeout_s: float) -> None:
        n = self.primaries_wanted
        primaries, replicas = self.nodes[:n], self.nodes[n:]
        per = SLOTS // n
        for i, node in enumerate(primaries):
            first = i * per
            last = SLOTS - 1 if i == n - 1 else (i + 1) * per - 1
            node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            node.client().execute_command("CLUSTER", "MEET", "127.0.0.1", seed.port,
                                          self.bus_ports[0])
        self._wait(lambda: all(len(self._known_nodes(x)) == len(self.nodes) for x in self.nodes),
                   timeout_s, "every node to know every other node")
        for i, replica in enumerate(replicas):
            primary = primaries[i % n]
            primary_id = primary.client().execute_command("CLUSTER", "MYID").decode()
            self._wait(lambda r=replica, p=primary_id: self._try_replicate(r, p), timeout_s,
                       "replica to attach")
        self.wait_healthy(timeout_s)

    @staticmethod
    def _try_replicate(replica: RedisServer, primary_id: str) -> bool:
        try:
            replica.client().execute_command("CLUSTER", "REPLICATE", primary_id)
        except redis.ResponseError:  # the replica does not know the primary yet
            return False
        return True

    # -- state -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.live_nodes()[0].url

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.port) for n in self.live_nodes()]

    def live_nodes(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None]

    def client(self, **kwargs: Any) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.live_nodes()[0].port,
                                  socket_timeout=5, **kwargs)

    def _known_nodes(self, node: RedisServer) -> list[str]:
        text = node.client().execute_command("CLUSTER", "NODES").decode()
        return [line for line in text.splitlines() if line.strip()]

    def topology(self, node: RedisServer | None = None) -> dict[int, str]:
        """port -> "master"/"slave" (with ",fail" etc.), as ``node`` sees it."""
        node = node or self.live_nodes()[0]
        out = {}
        for line in self._known_nodes(node):
            parts = line.split()
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            out[port] = parts[2].replace("myself,", "")
        return out

    def primary_servers(self) -> list[RedisServer]:
        """The live nodes whose role is primary (as they report it themselves)."""
        found = []
        for node in self.live_nodes():
            role = node.client().execute_command("ROLE")[0]
            if role == b"master":
                found.append(node)
        return found

    def server_for_port(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def owner_of(self, key: str | bytes) -> RedisServer:
        """The primary owning ``key``'s slot (asks CLUSTER SHARDS/SLOTS on a live node)."""
        slot = int(self.live_nodes()[0].client().execute_command("CLUSTER", "KEYSLOT", key))
        for first, last, primary, *_ in self.live_nodes()[0].client().execute_command(
                "CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return self.server_for_port(int(primary[1]))
        raise ClusterError(f"no owner for slot {slot}")

    def is_healthy(self) -> bool:
        """Every live node says cluster_state:ok, sees the same 3 live primaries and no failure."""
        views = []
        for node in self.live_nodes():
            try:
                info = node.client().execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info:
                    return False
                topo = self.topology(node)
            except redis.RedisError:
                return False
            live = {p: r for p, r in topo.items() if self.server_for_port(p).proc is not None}
            if any("fail" in r for r in live.values()):
                return False
            views.append(frozenset(p for p, r in live.items() if r.startswith("master")))
        return len(set(views)) == 1 and len(views[0]) == self.primaries_wanted

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        self._wait(self.is_healthy, timeout_s, "cluster_state:ok on every node")

    # -- faults ------------------------------------------------------------------------
    def kill_primary(self, node: RedisServer | None = None) -> RedisServer:
        """SIGKILL a primary (default: the first); return it (for ``restart_node``)."""
        node = node or self.primary_servers()[0]
        node.kill()
        return node

    def wait_promoted(self, killed: RedisServer, timeout_s: float = 20.0) -> None:
        """Wait until a replica of ``killed`` is primary and every slot is served again."""
        self._wait(lambda: self._slots_served_without(killed), timeout_s,
                   f"a replica of :{killed.port} to be promoted")

    def _slots_served_without(self, killed: RedisServer) -> bool:
        try:
            for node in self.live_nodes():
                info = node.client().execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info:
                    return False
            slots = self.live_nodes()[0].client().execute_command("CLUSTER", "SLOTS")
        except redis.RedisError:
            return False
        covered = sum(last - first + 1 for first, last, *_ in slots)
        owners = {int(primary[1]) for _, _, primary, *_ in slots}
        return covered == SLOTS and killed.port not in owners

    def restart_node(self, node: RedisServer, timeout_s: float = 30.0) -> None:
        """Bring a killed node back (it rejoins as a replica) and wait for a healthy cluster."""
        node.start()
        self.wait_healthy(timeout_s)

    @staticmethod
    def _wait(predicate: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise ClusterError(f"timed out after {timeout_s:g}s waiting for {what}")


def cluster_fixture(tmp_path_factory: Any) -> Any:
    """Body of a module-scoped ``cluster`` fixture: start, yield, always stop."""
    cluster = RedisClusterFixture(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()
