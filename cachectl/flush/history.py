"""The audit trail: one entry per destructive flush in the capped stream
``<internal_prefix>:audit``, and reading it back (``cachectl flush --history``)."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachectl.errors import UsageError
from cachectl.flush.model import FlushResult
from cachectl.policy.model import Policy

AUDIT_MAXLEN = 10_000


@dataclass(frozen=True)
class Actor:
    """Who ran a flush, for the audit trail."""

    user: str
    host: str


def current_actor() -> Actor:
    """The local user and host name (for the audit entry)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return Actor(user, socket.gethostname())


def error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def audit_key(policy: Policy) -> str:
    """The capped stream of flush runs: ``<internal_prefix>:audit``."""
    return f"{policy.internal_prefix}:audit"


@dataclass(frozen=True)
class AuditEntry:
    """One destructive flush run, as recorded in the audit stream."""

    id: str
    time: str  # ISO 8601, UTC
    user: str
    host: str
    what: str
    mode: str
    matched: int
    changed: int
    skipped: int
    seconds: float
    interrupted: bool


def append_audit(client: Any, policy: Policy, result: FlushResult, actor: Actor,
                 now_s: float) -> str:
    """XADD one entry for ``result`` to the audit stream (MAXLEN ~ 10000); return its id."""
    fields = {
        "time": datetime.fromtimestamp(now_s, UTC).isoformat(timespec="seconds"),
        "user": actor.user,
        "host": actor.host,
        "what": result.what,
        "mode": result.mode.value,
        "matched": str(result.matched),
        "changed": str(result.changed),
        "skipped": str(result.skipped),
        "seconds": f"{result.seconds:.3f}",
        "interrupted": "1" if result.interrupted else "0",
    }
    if result.uncertain:  # a batch whose reply never came: it may have run
        fields["uncertain"] = str(result.uncertain)
    entry_id = client.xadd(audit_key(policy), fields, maxlen=AUDIT_MAXLEN, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def read_history(client: Any, policy: Policy, limit: int = 20) -> tuple[AuditEntry, ...]:
    """The latest ``limit`` audit entries, newest first."""
    if limit < 1:
        raise UsageError(f"--limit {limit} must be at least 1")
    rows = client.xrevrange(audit_key(policy), "+", "-", count=limit)
    entries = []
    for raw_id, raw in rows:
        f = {k.decode(): v.decode("utf-8", "backslashreplace") for k, v in raw.items()}
        entries.append(AuditEntry(
            raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id),
            f.get("time", ""), f.get("user", "?"), f.get("host", "?"), f.get("what", ""),
            f.get("mode", "?"), _int(f.get("matched")), _int(f.get("changed")),
            _int(f.get("skipped")), _float(f.get("seconds")), f.get("interrupted") == "1"))
    return tuple(entries)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _float(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0
