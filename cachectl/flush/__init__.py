"""Flush: remove (or soften) exactly the keys of chosen namespaces without blocking Redis.

A target is a namespace (``--namespace``, or each namespace a ``--tag`` names), the
one key a template renders (``--key``), or a raw glob (``--pattern``, only with
``force``). Keys are found by a cluster-aware SCAN with the namespace's escaped glob,
confirmed by its exact regex, and then by ``NamespaceMatcher``: a key that an
earlier namespace owns (overlapping templates) is never touched, nor is anything
under ``policy.internal_prefix`` (cachectl's own counters, audit stream, locks).

Hard flush: ``UNLINK`` in bounded batches (the value is freed off the main thread).
There is no path to FLUSHDB/FLUSHALL or to a multi-thousand-key DEL.
Soft flush: every key's PTTL is lowered to the top of its namespace's stale band
(``soft_expire_pttl_ms``) by a Lua script that never lengthens a TTL (PEXPIRE …
LT semantics, checked atomically per key); values are untouched, so the library
serves them as stale and revalidates them one caller at a time.

Throughput: SCAN replies are read one ahead by a thread, filtered in C (one compiled
regex per target, see ``target_selector``), gathered into full batches, and each batch is
UNLINKed on another connection while the next SCAN runs, so the server is rarely
idle waiting for the client. Every command stays well under a millisecond. A
cluster's primaries are flushed at the same time, a thread (and those connections)
each, with a latency governor each; ``FlushResult.nodes`` says what each one did.

Pacing: ``rate`` caps keys per second; the server's own latency (a PING timed
between batches) is watched throughout, and batches shrink and pause when it rises.
Every destructive run appends one entry to the capped stream
``<internal_prefix>:audit`` (``read_history`` lists it).

Raises ``UsageError`` for a wrong selection and ``InterruptedWork`` (with the partial
``FlushResult``) when ``should_stop`` asks to stop; redis-py errors propagate (the CLI
turns them into exit 3 with ``connection.redis_errors``).
"""

from __future__ import annotations

from cachectl.flush.history import (
    AUDIT_MAXLEN,
    Actor,
    AuditEntry,
    append_audit,
    audit_key,
    current_actor,
    read_history,
)
from cachectl.flush.model import FlushResult, NodeResult, TargetResult, changed_word
from cachectl.flush.plan import EXACT_COUNT_LIMIT, EXAMPLES, SAMPLE_KEYS, FlushPlan, TargetPlan, plan_flush
from cachectl.flush.primitives import (
    DEFAULT_BATCH,
    MAX_BATCH,
    MIN_BATCH,
    LatencyGovernor,
    SoftenCounts,
    clamp_keys,
    soften_keys,
    supports_pexpire_lt,
    unlink_keys,
)
from cachectl.flush.run import FlushStep, check_pacing, flush_in_one_pass, flush_namespaces
from cachectl.flush.targets import (
    FlushMode,
    FlushTarget,
    check_soft,
    describe,
    matches_everything,
    matches_policy_keyspace,
    select_targets,
)
from cachectl.keyspace.matcher import glob_matcher

__all__ = [
    "AUDIT_MAXLEN",
    "DEFAULT_BATCH",
    "EXACT_COUNT_LIMIT",
    "EXAMPLES",
    "MAX_BATCH",
    "MIN_BATCH",
    "SAMPLE_KEYS",
    "Actor",
    "AuditEntry",
    "FlushMode",
    "FlushPlan",
    "FlushResult",
    "FlushStep",
    "FlushTarget",
    "LatencyGovernor",
    "NodeResult",
    "SoftenCounts",
    "TargetPlan",
    "TargetResult",
    "append_audit",
    "audit_key",
    "changed_word",
    "check_pacing",
    "check_soft",
    "clamp_keys",
    "current_actor",
    "describe",
    "flush_in_one_pass",
    "flush_namespaces",
    "glob_matcher",
    "matches_everything",
    "matches_policy_keyspace",
    "plan_flush",
    "read_history",
    "select_targets",
    "soften_keys",
    "supports_pexpire_lt",
    "unlink_keys",
]
