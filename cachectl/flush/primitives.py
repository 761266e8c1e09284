"""What a flush sends per batch (UNLINK, or the soft-flush script), cluster-aware, and
the latency governor that sizes the batches."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.exceptions as rex
from redis.crc import key_slot

from cachectl import resp

DEFAULT_BATCH = 1000  # keys per UNLINK and per SCAN: each well under a millisecond of server time
MAX_BATCH = 10_000
MIN_BATCH = 50


SOFTEN_SCRIPT = """
-- KEYS: the keys to soften (one hash slot on a cluster)
-- ARGV[1]: the PTTL to set, in ms (the top of the namespace's stale band)
-- Per key, atomically: missing -> vanished; no expiry, or a PTTL above ARGV[1] ->
-- PEXPIRE to ARGV[1] (a TTL is only ever shortened, as PEXPIRE ... LT would);
-- already at or below ARGV[1] -> left alone. The value is never read or written.
-- Returns {softened (incl. no_ttl), no_ttl, already_stale, vanished}.
local target = tonumber(ARGV[1])
local softened, no_ttl, already, vanished = 0, 0, 0, 0
for _, key in ipairs(KEYS) do
  local pttl = redis.call('PTTL', key)
  if pttl == -2 then
    vanished = vanished + 1
  elseif pttl == -1 or pttl > target then
    redis.call('PEXPIRE', key, target)
    softened = softened + 1
    if pttl == -1 then no_ttl = no_ttl + 1 end
  else
    already = already + 1
  end
end
return {softened, no_ttl, already, vanished}
"""


@dataclass(frozen=True)
class SoftenCounts:
    """What ``soften_keys`` did to a batch."""

    softened: int = 0  # PTTL lowered to the stale band (includes no_ttl)
    no_ttl: int = 0  # had no expiry at all and now have one
    already_stale: int = 0  # PTTL already at or below the band: left alone
    vanished: int = 0  # no longer existed

    def __add__(self, other: SoftenCounts) -> SoftenCounts:
        return SoftenCounts(self.softened + other.softened, self.no_ttl + other.no_ttl,
                            self.already_stale + other.already_stale,
                            self.vanished + other.vanished)


def is_cluster_client(node: Any) -> bool:
    return hasattr(node, "get_primaries")


def keys_by_slot(keys: Iterable[bytes]) -> dict[int, list[bytes]]:
    """``keys`` grouped by hash slot: one UNLINK (or script call) per group on a cluster."""
    groups: dict[int, list[bytes]] = {}
    for k in keys:
        groups.setdefault(key_slot(k), []).append(k)
    return groups


def _crossslot(exc: rex.ResponseError) -> bool:
    return "CROSSSLOT" in str(exc)


def unlink_keys(node: Any, keys: Sequence[bytes], *, cluster: bool | None = None) -> int:
    """UNLINK ``keys`` on ``node``; return how many existed (and are now gone).

    ``node`` is a standalone client (one primary) or a RedisCluster client. On a
    cluster node the keys are grouped per hash slot into one pipelined round trip;
    ``cluster=None`` finds out from a CROSSSLOT reply. UNLINK is atomic per call and
    skips missing keys, so a key deleted or expired meanwhile is simply not counted.
    Callers bound ``len(keys)`` (a batch); nothing here sends DEL.
    """
    if not keys:
        return 0
    if is_cluster_client(node):
        return int(node.unlink(*keys))  # redis-py splits it per slot
    if not cluster:
        try:
            return int(node.unlink(*keys))
        except rex.ResponseError as exc:
            if cluster is False or not _crossslot(exc):
                raise
    pipe = node.pipeline(transaction=False)
    for group in keys_by_slot(keys).values():
        pipe.unlink(*group)
    return sum(int(n) for n in pipe.execute())


def soften_keys(node: Any, keys: Sequence[bytes], pttl_ms: int, *,
                cluster: bool | None = None) -> SoftenCounts:
    """Lower each key's PTTL to ``pttl_ms`` unless it is already lower; values untouched.

    A key without expiry gets ``pttl_ms`` too: a cached key should never live forever,
    and soft flush means "serve stale, then revalidate". One atomic Lua call per batch
    (per hash slot on a cluster), so a concurrent write cannot be lengthened or lost.
    """
    if not keys:
        return SoftenCounts()
    if pttl_ms <= 0:
        raise ValueError("pttl_ms must be positive")
    script = node.register_script(SOFTEN_SCRIPT)
    try:
        if not cluster and not is_cluster_client(node):
            try:
                return SoftenCounts(*(int(n) for n in script(keys=list(keys), args=[pttl_ms])))
            except rex.ResponseError as exc:
                if cluster is False or not _crossslot(exc):
                    raise
        total = SoftenCounts()
        for group in keys_by_slot(keys).values():
            total = total + SoftenCounts(*(int(n) for n in script(keys=group, args=[pttl_ms])))
        return total
    except rex.ResponseError as exc:
        if "can't run this command" in str(exc):  # an ACL refused PTTL/PEXPIRE in the script
            raise rex.NoPermissionError(
                "NOPERM the soften script's commands were refused; the user needs "
                f"'pttl' and 'pexpire' as well as 'evalsha' ({str(exc).splitlines()[0]})"
            ) from exc
        raise


def supports_pexpire_lt(client: Any, probe_key: str) -> bool:
    """Whether the server takes ``PEXPIRE key ms LT`` (Redis >= 7): asked, not inferred.

    ``probe_key`` should not exist (cachectl's own prefix); PEXPIRE on a missing key
    changes nothing either way.
    """
    try:
        client.pexpire(probe_key, 1, lt=True)
    except rex.ResponseError:
        return False
    return True


def clamp_keys(node: Any, keys: Sequence[bytes], pttl_ms: int, *, lt_supported: bool,
               cluster: bool | None = None) -> SoftenCounts:
    """Lower each key's PTTL to ``pttl_ms`` unless it is already lower; values untouched.

    ``PEXPIRE key pttl_ms LT`` pipelined (a key without expiry counts as an infinite
    TTL, so it gets ``pttl_ms`` too); without LT (Redis < 7) the soften script, which
    does the same atomically. Counts: ``softened`` lowered, ``already_stale`` at or below
    already (or gone: PEXPIRE … LT answers 0 for both).
    """
    if not keys:
        return SoftenCounts()
    if pttl_ms <= 0:
        raise ValueError("pttl_ms must be positive")
    if not lt_supported:
        return soften_keys(node, keys, pttl_ms, cluster=cluster)
    lowered = pexpire_lt_packed(node, keys, pttl_ms)
    if lowered is None:  # a cluster client, or a connection without a socket (fakeredis)
        pipe = node.pipeline(transaction=False)
        for key in keys:
            pipe.pexpire(key, pttl_ms, lt=True)
        lowered = sum(1 for reply in pipe.execute() if reply)
    return SoftenCounts(softened=lowered, already_stale=len(keys) - lowered)


_PEXPIRE = b"*4\r\n$7\r\nPEXPIRE\r\n$%d\r\n%b"
_ONE, _ZERO = b":1\r\n", b":0\r\n"


def pexpire_lt_packed(node: Any, keys: Sequence[bytes], pttl_ms: int) -> int | None:
    """``PEXPIRE key pttl_ms LT`` for every key, written as one pre-encoded packet on one
    connection of ``node``'s pool; the number of keys whose TTL was lowered.

    redis-py's pipeline builds Python objects per command and per reply: for 1,000 keys
    it costs the client about 7 ms of CPU, this about 0.3 ms (benchmarks/plan.py), and on
    a small host the client's CPU is the server's. Replies are counted in bulk when they
    are nothing but ``:0``/``:1``, else parsed one by one (``cachectl.resp``); every
    reply is read even after an error one, so the connection goes back to the pool in
    step, then the first error is raised as redis-py would (``ResponseError`` and its
    subclasses). A broken connection or a timeout is redis-py's ConnectionError or
    TimeoutError, and that connection is dropped. None when ``node`` has no plain
    socket connection (a cluster client routes per key itself; fakeredis has no socket).
    """
    if not keys:
        return 0
    pool = getattr(node, "connection_pool", None)
    if pool is None or is_cluster_client(node):
        return None
    ms = b"%d" % pttl_ms
    tail = b"\r\n$%d\r\n%b\r\n$2\r\nLT\r\n" % (len(ms), ms)
    payload = b"".join([_PEXPIRE % (len(k), k) + tail for k in keys])
    conn = pool.get_connection()
    try:
        conn.connect()  # a no-op when connected already
        sock = conn._sock  # redis-py keeps the (TLS) socket here once connected
        if not isinstance(sock, socket.socket):
            return None
        conn.send_packed_command([payload])  # checks the connection's health as redis-py does
        return _count_lowered(sock, len(keys))
    except rex.ResponseError:
        raise  # every reply was read: the connection is in step
    except OSError as exc:
        conn.disconnect()
        if isinstance(exc, socket.timeout | TimeoutError):
            raise rex.TimeoutError("timed out waiting for Redis to answer PEXPIRE") from exc
        raise rex.ConnectionError(f"the connection broke while clamping TTLs: {exc}") from exc
    except BaseException:
        conn.disconnect()  # replies may be unread: never reuse this connection
        raise
    finally:
        pool.release(conn)


def _count_lowered(sock: socket.socket, expected: int) -> int:
    """Read ``expected`` PEXPIRE replies from ``sock``; how many were 1. Raises the first
    error reply as redis-py's exception, once every reply is read."""
    reader = resp.Reader()
    left, lowered = expected, 0
    first_error: Exception | None = None
    while left:
        data = sock.recv(1 << 16)
        if not data:
            raise rex.ConnectionError("Redis closed the connection while clamping TTLs")
        whole = len(data) // 4
        if (whole <= left and whole * 4 == len(data) and not reader.has_data()):
            ones = data.count(_ONE)
            if ones + data.count(_ZERO) == whole:  # nothing but :1 and :0: no parsing needed
                lowered += ones
                left -= whole
                continue
        reader.feed(data)
        while left:
            reply = reader.gets()
            if reply is False:
                break
            left -= 1
            if isinstance(reply, int):
                lowered += reply == 1
            elif first_error is None:
                first_error = _as_error(reply)
    if first_error is not None:
        raise first_error
    return lowered


def _as_error(reply: object) -> Exception:
    if isinstance(reply, resp.ReplyError):
        from redis._parsers import BaseParser

        error: Exception = BaseParser.parse_error(str(reply))  # type: ignore[no-untyped-call]
        return error
    return rex.ResponseError(f"unexpected reply to PEXPIRE: {reply!r}")


class LatencyGovernor:
    """Adapts the batch size to the server's latency as measured between batches.

    ``observe(rtt_ms)`` takes the round trip of a PING sent after a batch. The
    lowest round trip seen is the baseline; a moving average (so one scheduling
    hiccup on a busy client host does not count) above ``max(slow_ms, 4 × baseline)``
    halves the batch and asks for a short pause, so other clients' commands are
    served first; once it is low again the batch grows back toward ``max_batch``.
    """

    def __init__(self, max_batch: int, *, slow_ms: float = 2.0, min_batch: int = MIN_BATCH,
                 max_pause_s: float = 0.05, smoothing: float = 0.3) -> None:
        self.max_batch = max(1, max_batch)
        self.min_batch = min(min_batch, self.max_batch)
        self.batch = self.max_batch
        self.slow_ms = slow_ms
        self.max_pause_s = max_pause_s
        self.smoothing = smoothing
        self.baseline_ms: float | None = None
        self.average_ms: float | None = None
        self.backoffs = 0
        self.max_rtt_ms = 0.0

    def observe(self, rtt_ms: float) -> float:
        """Record a PING round trip; return the seconds to pause before the next batch."""
        self.max_rtt_ms = max(self.max_rtt_ms, rtt_ms)
        self.baseline_ms = rtt_ms if self.baseline_ms is None else min(self.baseline_ms, rtt_ms)
        self.average_ms = rtt_ms if self.average_ms is None else (
            (1 - self.smoothing) * self.average_ms + self.smoothing * rtt_ms)
        limit = max(self.slow_ms, 4 * self.baseline_ms)
        if self.average_ms > limit:
            self.backoffs += 1
            self.batch = max(self.min_batch, self.batch // 2)
            return min(self.max_pause_s, self.average_ms * 2 / 1000)
        self.batch = min(self.max_batch, self.batch + max(1, self.max_batch // 4))
        return 0.0
