"""ACL users for tests, and the least-privilege rule of each cachectl command family.

``FAMILY_RULES`` is the single source of the rules docs/topologies.md documents (a test keeps
its table equal to it) and the topology tests run each command under. Every rule
is confined to the cache's keys (``~<prefix>:*``) and channels (``&<prefix>:*``);
cachectl's own keys live under ``<prefix>:cachectl`` so the same pattern covers them.

- ``CONNECT`` is what redis-py itself sends on every connection (PING from ``connect``,
  CLIENT SETNAME; AUTH/HELLO need no permission). CLIENT SETINFO is best-effort.
- ``CLUSTER_EXTRA`` is what the cluster client adds (CLUSTER SLOTS for the slot map,
  COMMAND for key positions).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

CONNECT = ("+ping", "+client|setname")
CLUSTER_EXTRA = ("+cluster|slots", "+command")

# command family -> the commands it needs beyond CONNECT (and CLUSTER_EXTRA on a cluster);
# None: the family never talks to Redis
FAMILY_RULES: dict[str, tuple[str, ...] | None] = {
    "lint": None,
    # a Lua batch (EVALSHA: PTTL, MEMORY USAGE, TIME inside) or pipelined commands (--no-lua)
    "inspect": ("+scan", "+dbsize", "+info", "+time", "+pttl", "+memory|usage", "+evalsha",
                "+script|load", "+type", "+object|encoding", "+object|idletime", "+get",
                "+strlen"),
    "warm": ("+set",),
    # UNLINK (plain), a Lua PTTL/PEXPIRE script (--soft), the audit stream (XADD/XREVRANGE)
    "flush": ("+scan", "+dbsize", "+unlink", "+pttl", "+pexpire", "+evalsha", "+script|load",
              "+xadd", "+xrevrange"),
    "stats": ("+info", "+latency|histogram", "+hgetall", "+scan", "+dbsize", "+memory|usage"),
    # writes and removes its own keys under <prefix>:cachectl:bench:, samples real ones
    # (TYPE, then STRLEN or MEMORY USAGE); --existing reads real keys with the read
    # command of their type (GET, HGETALL, LRANGE, SMEMBERS, ZRANGE, XRANGE); INFO memory
    # tells it the headroom below maxmemory before it writes
    "bench": ("+get", "+set", "+unlink", "+scan", "+type", "+strlen", "+memory|usage",
              "+hgetall", "+lrange", "+smembers", "+zrange", "+xrange", "+info"),
    # GET+PTTL reads, SET writes, the revalidation lock (SET NX PX, compare-and-delete in
    # Lua), invalidation (UNLINK, PEXPIRE, SCAN for tags), counters (HINCRBY, EXPIRE), L1
    # coherence (PUBLISH/SUBSCRIBE on <prefix>:… channels)
    "library": ("+get", "+set", "+pttl", "+pexpire", "+expire", "+del", "+unlink", "+scan",
                "+evalsha", "+script|load", "+hincrby", "+publish", "+subscribe"),
}
# cachectl commands -> the family whose rule they run under
COMMAND_FAMILY = {"lint": "lint", "schema": "lint", "inspect": "inspect", "audit": "inspect",
                  "warm": "warm", "flush": "flush", "stats": "stats", "bench": "bench"}

# the roles the issue names
ROLE_RULES: dict[str, tuple[str, ...]] = {
    "admin": ("~*", "&*", "+@all"),
    # read and delete cache keys, never FLUSHALL/FLUSHDB/CONFIG/KEYS/DEBUG (all @dangerous)
    "operator": ("+@read", "+@write", "+@keyspace", "+@connection", "+@scripting",
                 "-@dangerous", "+info", "+latency|histogram", *CLUSTER_EXTRA),
    "readonly": ("+@read", "+@connection", "-@dangerous", "+info", *CLUSTER_EXTRA),
}


def family_rule(family: str, prefix: str = "shop", *, cluster: bool = False) -> list[str]:
    """The ACL SETUSER rules (without on/password) of a command family, for ``prefix``."""
    extra = FAMILY_RULES[family]
    if extra is None:
        return ["resetkeys", "resetchannels", "-@all"]
    rules = ["resetkeys", "resetchannels", "-@all", f"~{prefix}:*", f"&{prefix}:*",
             *CONNECT, *extra]
    if cluster:
        rules += CLUSTER_EXTRA
    return rules


def role_rule(role: str, prefix: str = "shop") -> list[str]:
    rules = ROLE_RULES[role]
    keys = [] if role == "admin" else [f"~{prefix}:*", f"&{prefix}:*"]
    return ["resetkeys", "resetchannels", "-@all", *keys, *rules]


def documented_rule(family: str, prefix: str = "shop") -> str:
    """The rule as docs/topologies.md shows it (one ``ACL SETUSER`` line)."""
    extra = FAMILY_RULES[family]
    if extra is None:
        return "(no Redis access)"
    return " ".join([f"~{prefix}:*", f"&{prefix}:*", *CONNECT, *extra])


@dataclass(frozen=True)
class AclUser:
    name: str
    password: str

    def url(self, host: str, port: int, scheme: str = "redis") -> str:
        return f"{scheme}://{self.name}:{self.password}@{host}:{port}/0"


def set_user(clients: Iterable[Any], name: str, password: str, rules: list[str]) -> AclUser:
    """Create or replace ``name`` on every given node (a cluster has one ACL per node)."""
    for client in clients:
        client.execute_command("ACL", "SETUSER", name, "reset", "on", f">{password}", *rules)
    return AclUser(name, password)


def family_user(clients: Iterable[Any], family: str, prefix: str = "shop", *,
                cluster: bool = False) -> AclUser:
    return set_user(clients, f"cachectl-{family}", f"pw-{family}-s3cret",
                    family_rule(family, prefix, cluster=cluster))


def role_user(clients: Iterable[Any], role: str, prefix: str = "shop") -> AclUser:
    return set_user(clients, role, f"pw-{role}-s3cret", role_rule(role, prefix))


def seed_every_type(client: Any, prefix: str = "shop") -> set[bytes]:
    """A hash, list, set, sorted set and stream in the cart namespace (with TTLs).

    The bench rule is checked against what bench sends for these (MEMORY USAGE to size
    them, HGETALL/LRANGE/SMEMBERS/ZRANGE/XRANGE to read them with --existing).
    """
    keys = {t: f"{prefix}:cart:{t}".encode() for t in ("hash", "list", "set", "zset", "stream")}
    pipe = client.pipeline(transaction=False)
    pipe.hset(keys["hash"], mapping={"sku-1": 2, "sku-2": 1})
    pipe.rpush(keys["list"], b"sku-1", b"sku-2")
    pipe.sadd(keys["set"], b"sku-1", b"sku-2")
    pipe.zadd(keys["zset"], {b"sku-1": 1.0, b"sku-2": 2.0})
    pipe.xadd(keys["stream"], {b"sku": b"sku-1"})
    for key in keys.values():
        pipe.pexpire(key, 1_800_000)
    pipe.execute()
    return set(keys.values())
