"""Stream pre-encoded commands to one Redis connection and read replies as they come.

redis-py's pipeline builds Python objects per command and per reply, which caps it
at about a tenth of ``redis-cli --pipe``. ``Pipe`` writes RESP bytes that the caller
encoded in bulk, in large chunks, keeps at most ``window`` batches unanswered, and
parses replies as they arrive (``cachectl.resp``: hiredis when installed), reporting
only the ones that are not OK.
"""

from __future__ import annotations

import select
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cachectl import resp

SET_NX = b"*6\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n$2\r\nNX\r\n"
SET_PX = b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n"

_RECV = 1 << 18


def encode_set(key: bytes, value: bytes, ttl_ms: int, nx: bool = False) -> bytes:
    """``SET key value PX ttl_ms [NX]`` as RESP (one command; the writer inlines this)."""
    ttl = b"%d" % ttl_ms
    return (SET_NX if nx else SET_PX) % (len(key), key, len(value), value, len(ttl), ttl)


@dataclass
class Batch:
    """Commands sent together; ``tags`` (one per command) name their rows for reports."""

    tags: list[Any]
    keys: list[bytes]
    values: list[bytes]
    ttls: list[int]
    acked: int = 0
    ok: int = 0
    skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (index, error text)

    def __len__(self) -> int:
        return len(self.tags)


class Pipe:
    """One connection (a redis-py Connection, already authenticated) fed raw RESP."""

    def __init__(self, connection: Any, on_done: Callable[[Batch], None],
                 window: int = 8) -> None:
        self.connection = connection
        self._sock = connection._sock  # redis-py keeps the (TLS) socket here once connected
        self._reader = resp.Reader()
        self._inflight: deque[Batch] = deque()
        self._on_done = on_done
        self.window = window

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def send(self, payload: bytes, batch: Batch) -> None:
        """Write one batch, then read whatever replies have arrived (all of the oldest
        batches' when more than ``window`` are unanswered)."""
        self._sock.sendall(payload)
        self._inflight.append(batch)
        self._poll(block=False)
        while len(self._inflight) > self.window:
            self._poll(block=True)

    def drain(self) -> None:
        """Wait for the replies to everything sent."""
        while self._inflight:
            self._poll(block=True)

    def _readable(self) -> bool:
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        ready, _, _ = select.select([self._sock], [], [], 0)
        return bool(ready)

    def _poll(self, block: bool) -> None:
        if not block and not self._readable():
            return
        data = self._sock.recv(_RECV)
        if not data:
            raise ConnectionError("Redis closed the connection")
        whole = len(data) // 5
        if whole * 5 == len(data) and not self._reader.has_data() \
                and data.count(b"+OK\r\n") == whole:
            self._ack_ok(whole)  # nothing but whole +OK replies: no parsing needed
            return
        self._reader.feed(data)
        gets = self._reader.gets
        inflight = self._inflight
        while inflight:
            batch = inflight[0]
            n = len(batch.tags)
            acked = batch.acked
            while acked < n:
                reply = gets()
                if reply is False:
                    batch.acked = acked
                    return
                if reply.__class__ is bytes:
                    batch.ok += 1
                elif reply is None:
                    batch.skipped += 1  # SET … NX on an existing key
                else:
                    batch.errors.append((acked, str(reply)))
                acked += 1
            batch.acked = acked
            inflight.popleft()
            self._on_done(batch)

    def _ack_ok(self, count: int) -> None:
        """``count`` +OK replies, credited to the oldest batches in order."""
        inflight = self._inflight
        while count and inflight:
            batch = inflight[0]
            take = min(count, len(batch.tags) - batch.acked)
            batch.ok += take
            batch.acked += take
            count -= take
            if batch.acked < len(batch.tags):
                return
            inflight.popleft()
            self._on_done(batch)
        if count:
            raise ConnectionError(f"Redis sent {count} replies more than commands sent")
