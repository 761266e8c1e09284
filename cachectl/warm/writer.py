"""Where a warm's commands go: one lane (a batch being filled) per connection, pipes to the
primaries (one for a standalone server), the replies credited to the namespace's tally, and the
rows a cluster redirected retried through the cluster client."""

from __future__ import annotations

import socket
from typing import Any

import redis.exceptions as rex

from cachectl.errors import RedisUnavailableError
from cachectl.warm.model import Tally
from cachectl.warm.pipe import Batch, Pipe


class Lane:
    """Commands bound for one connection (one node), batched."""

    __slots__ = ("keys", "parts", "pipe", "size", "tags", "values")

    def __init__(self, pipe: Pipe | None, keep_values: bool) -> None:
        self.pipe = pipe
        self.parts: list[bytes] = []
        self.tags: list[int] = []
        self.keys: list[bytes] = []
        self.values: list[bytes] | None = [] if keep_values else None
        self.size = 0

    def take(self) -> tuple[bytes, Batch]:
        batch = Batch(self.tags, self.keys, self.values or [], [])
        payload = b"".join(self.parts)
        self.parts, self.tags, self.keys = [], [], []
        self.values = [] if self.values is not None else None
        self.size = 0
        return payload, batch



class Writer:
    """Pipes to the primaries (one for a standalone server), and the retries of redirected rows."""

    def __init__(self, client: Any, *, window: int, nx: bool) -> None:
        self.client = client
        self.window = window
        self.nx = nx
        self.cluster = hasattr(client, "nodes_manager")
        self._lanes: dict[str, Lane] = {}
        self._conns: list[tuple[Any, Any]] = []  # (pool, connection)
        self._slot_lane: list[Lane | None] = [None] * 16384
        self._tally: Tally | None = None
        self.redirected: list[tuple[int, bytes, bytes, int]] = []
        self.out_of_memory: str | None = None
        self.permission_denied: str | None = None  # a command-level NOPERM: stop, exit 3

    def lanes(self) -> list[Lane]:
        return list(self._lanes.values())

    def _open(self, name: str, redis_client: Any) -> Lane:
        pool = redis_client.connection_pool
        conn = pool.get_connection()
        self._conns.append((pool, conn))
        lane = Lane(Pipe(conn, self._done, self.window), keep_values=self.cluster)
        self._lanes[name] = lane
        return lane

    def lane_for(self, key: bytes) -> Lane:
        """The lane of a standalone server (the only one)."""
        lane = self._lanes.get("")
        return lane if lane is not None else self._open("", self.client)

    def route(self, key: bytes) -> Lane:
        """The lane of the primary that owns ``key``'s slot (cluster)."""
        slot = self.client.keyslot(key)
        lane: Lane | None = self._slot_lane[slot]
        if lane is not None:
            return lane
        node = self.client.nodes_manager.get_node_from_slot(slot)
        lane = self._lanes.get(node.name)
        if lane is None:
            if node.redis_connection is None:
                self.client.nodes_manager.create_redis_connections([node])
            lane = self._open(node.name, node.redis_connection)
        self._slot_lane[slot] = lane
        return lane

    def send(self, lane: Lane, tally: Tally) -> None:
        self._tally = tally
        payload, batch = lane.take()
        assert lane.pipe is not None
        try:
            lane.pipe.send(payload, batch)
        except OSError as exc:
            raise _connection_error(exc) from None

    def _done(self, batch: Batch) -> None:
        tally = self._tally
        assert tally is not None
        tally.written += batch.ok
        tally.skipped += batch.skipped
        oom = 0
        for index, error in batch.errors:
            key = batch.keys[index]
            if error.startswith(("MOVED ", "ASK ")):
                if not self.cluster:
                    raise rex.MovedError(error) if error.startswith("MOVED") else \
                        rex.AskError(error)
                value = batch.values[index]
                self.redirected.append((batch.tags[index], key, value, tally.ttls.get(key, 0)))
                continue
            category = error.split(" ", 1)[0] if error[:1].isupper() else "error"
            oom += category == "OOM"
            # a command refused outright fails every row: stop (exit 3); a key pattern the
            # user may not touch refuses only those rows, which are reported one by one
            if category == "NOPERM" and "to run" in error and self.permission_denied is None:
                self.permission_denied = error
            tally.problem(batch.tags[index], f"Redis refused the write: {error}", category,
                          key.decode("utf-8", "backslashreplace"), kind="failed")
        if batch.values:
            for key in batch.keys:
                tally.ttls.pop(key, None)
        if oom and oom == len(batch.tags):
            self.out_of_memory = ("Redis is out of memory (OOM: used memory > maxmemory with a "
                                  "noeviction policy); stopped after a batch was refused whole")

    def finish(self, tally: Tally) -> None:
        """Wait for every reply, retry redirected rows through the cluster client, release."""
        self._tally = tally
        try:
            for lane in self._lanes.values():
                assert lane.pipe is not None
                lane.pipe.drain()
        except OSError as exc:
            self.abort()
            raise _connection_error(exc) from None
        for pool, conn in self._conns:
            pool.release(conn)
        self._conns = []
        redirected, self.redirected = self.redirected, []
        for position, key, value, ttl in redirected:
            try:
                done = self.client.set(key, value, px=ttl, nx=self.nx)
            except rex.ResponseError as exc:
                category = str(exc).split(" ", 1)[0] or "error"
                tally.problem(position, f"Redis refused the write: {exc}", category,
                              key.decode("utf-8", "backslashreplace"), kind="failed")
                continue
            if done:
                tally.written += 1
            else:
                tally.skipped += 1

    def abort(self) -> None:
        """Drop the connections (their replies are unread) without returning them dirty."""
        for pool, conn in self._conns:
            conn.disconnect()
            pool.release(conn)
        self._conns = []


def _connection_error(exc: OSError) -> rex.RedisError:
    if isinstance(exc, socket.timeout | TimeoutError):
        return rex.TimeoutError("timed out waiting for Redis to answer the warm's writes")
    return rex.ConnectionError(f"the connection broke while warming: {exc}")


def permission_error(reply: str) -> RedisUnavailableError:
    """A NOPERM reply: every further write would be refused too, so stop with exit 3."""
    return RedisUnavailableError(
        f"permission denied: {reply}",
        hint="warm needs SET on the namespaces' keys; see docs/topologies.md, 'Least-privilege ACL'")


