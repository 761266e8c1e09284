"""Compare live keys with their source rows, record the result, and fix what differs.

Sampling: every live key of a namespace is found by SCAN; a sample of N keeps the N keys
whose keyed hash (BLAKE2b under the run's seed) is smallest, a uniform sample without
replacement that does not depend on SCAN's order, so a seed repeats a run exactly.

Comparison: the row is rendered exactly as warm renders it (the template, ``value``,
``encoding``), the cached value decoded from its compression frame; JSON values compare
as parsed JSON (key order and spacing aside), raw values byte for byte. A key whose row
is gone is ``missing``; a cached value that is not JSON (or a corrupt frame) is
``unparseable``. Each is counted in the key's freshness band (``cachectl.freshness``).

Redis side effects: reads only (SCAN, GET, PTTL), then one HSET of the result per
namespace in ``<internal_prefix>:verify`` (kept 30 days). ``fix_namespaces`` SETs each
differing key to its row as warm would (the policy's TTL, compression) and UNLINKs the
keys whose row is gone, in paced batches. A source that cannot be reached raises
SourceUnavailableError before anything is written.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from cachectl.compression import CorruptFrameError, decode, value_encoder
from cachectl.flush import check_pacing, unlink_keys
from cachectl.freshness import Freshness, classify, write_ttl_ms
from cachectl.keyspace.scan import scan_namespace
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Namespace, Policy
from cachectl.progress import ProgressCallback, no_progress
from cachectl.verify.model import (
    Difference,
    FixResult,
    NamespaceVerify,
    Repair,
    VerifyReport,
)
from cachectl.verify.rows import find_rows
from cachectl.warm.core import close_targets, open_targets
from cachectl.warm.loop import render_value
from cachectl.warm.model import WarmTarget

DEFAULT_SAMPLE = 200
EXAMPLES = 5
DIFF_LINES = 5
SHOWN_CHARS = 40
FETCH_BATCH = 500
RECORD_TTL_S = 30 * 86400
_ABSENT = object()


def record_key(policy: Policy) -> str:
    """The hash holding the last verify result per namespace: ``<internal_prefix>:verify``."""
    return f"{policy.internal_prefix}:verify"


def verify_namespaces(
    client: Any,
    policy: Policy,
    namespaces: Iterable[str] = (),
    *,
    sample: int | None = DEFAULT_SAMPLE,
    seed: int | None = None,
    env: Mapping[str, str] | None = None,
    examples: int = EXAMPLES,
    record: bool = True,
    on_progress: ProgressCallback = no_progress,
    wall_clock: Any = time.time,
) -> VerifyReport:
    """Compare live keys of ``namespaces`` (every one with a warm source when empty) with
    their source rows; ``sample`` None checks every key. Raises UsageError (a namespace
    without a source, a sample below 1), SourceError / SourceUnavailableError (nothing is
    recorded then) and redis-py errors."""
    from cachectl.errors import UsageError

    if sample is not None and sample < 1:
        raise UsageError(f"--sample {sample} must be at least 1", hint="or --all for every key")
    run_seed = seed if seed is not None else random.SystemRandom().randrange(1 << 32)
    targets = open_targets(policy, namespaces, env=env)
    try:
        results = tuple(_verify_one(client, policy, t, sample, run_seed, examples, on_progress)
                        for t in targets)
    finally:
        close_targets(targets)
    error = _record(client, policy, results, wall_clock()) if record else None
    return VerifyReport(results, run_seed, record_error=error)


def _sample_keys(client: Any, ns: Namespace, sample: int | None, seed: int,
                 progress: ProgressCallback) -> tuple[list[bytes], int, list[bytes] | None]:
    """(the keys to check, the namespace's live keys, every live key when all are checked)."""
    salt = seed.to_bytes(8, "big")
    heap: list[tuple[bytes, bytes]] = []  # (inverted rank, key): the root has the largest rank
    every: list[bytes] = []
    total = 0
    for _node, keys in scan_namespace(client, ns):
        for key in set(keys):  # SCAN may repeat a key within a batch
            total += 1
            if sample is None:
                every.append(key)
                continue
            rank = hashlib.blake2b(key, digest_size=8, key=salt).digest()
            inverted = bytes(255 - b for b in rank)  # heapq is a min-heap: keep the smallest
            if len(heap) < sample:
                heapq.heappush(heap, (inverted, key))
            elif inverted > heap[0][0]:
                heapq.heapreplace(heap, (inverted, key))
        progress(f"{ns.name}: keys", total)
    if sample is None:
        every = sorted(set(every))
        return every, len(every), every
    # a key SCAN returned in two batches (a rehash) is kept once
    chosen = sorted({key for _rank, key in heap})
    return chosen, max(total, len(chosen)), None


def _fetch(client: Any, keys: list[bytes]) -> dict[bytes, tuple[bytes, int]]:
    """GET and PTTL of every key, pipelined in batches; keys gone meanwhile are left out."""
    found: dict[bytes, tuple[bytes, int]] = {}
    for start in range(0, len(keys), FETCH_BATCH):
        part = keys[start:start + FETCH_BATCH]
        pipe = client.pipeline(transaction=False)
        for key in part:
            pipe.get(key)
            pipe.pttl(key)
        replies = pipe.execute()
        for i, key in enumerate(part):
            value, pttl = replies[2 * i], replies[2 * i + 1]
            if value is not None and pttl != -2:
                found[key] = (value, int(pttl))
    return found


def _verify_one(client: Any, policy: Policy, target: WarmTarget, sample: int | None, seed: int,
                examples: int, progress: ProgressCallback) -> NamespaceVerify:
    ns = target.namespace
    keys, live, every = _sample_keys(client, ns, sample, seed, progress)
    cached = _fetch(client, keys)
    found = find_rows(target, list(cached), all_live=every, progress=progress)
    warm = ns.warm
    value_field = warm.value if warm is not None else None
    raw = warm is not None and warm.encoding == "raw"
    encode_stored = value_encoder(ns.compress, raw)
    counts: dict[str, dict[str, int]] = {}
    identical = 0
    shown: list[Difference] = []
    repairs: list[Repair] = []
    for key, (stored, pttl) in cached.items():
        band = _band(pttl, ns)
        row = found.rows.get(key)
        expected: bytes | None = None
        if row is not None:
            try:
                expected = render_value(row, value_field, raw)
            except (KeyError, TypeError, ValueError, RecursionError):
                expected = None  # warm would reject this row: it has no value to serve
        kind, diff = _compare(stored, expected, raw, ns)
        if kind is None:
            identical += 1
            continue
        by_band = counts.setdefault(kind, {})
        by_band[band] = by_band.get(band, 0) + 1
        repairs.append(Repair(key, None if expected is None else (
            encode_stored(expected) if encode_stored is not None else expected)))
        if len(shown) < examples:
            shown.append(Difference(key.decode("utf-8", "backslashreplace"), kind, band, diff))
    return NamespaceVerify(
        namespace=ns.name, source=target.source.description, access=found.access,
        keys=live, checked=len(cached), identical=identical, counts=counts,
        not_cached=found.not_cached, limit=policy.thresholds.inconsistency_limit(ns.critical),
        examples=tuple(shown), repairs=tuple(repairs))


def _band(pttl: int, ns: Namespace) -> str:
    state = classify(pttl, ns)
    # PTTL 0: expiring this very millisecond, the end of the fail-safe band
    return str(Freshness.FAIL_SAFE if state is Freshness.GONE else state)


def _compare(stored: bytes, expected: bytes | None, raw: bool, ns: Namespace
             ) -> tuple[str | None, tuple[str, ...]]:
    """(None, ()) when equal, else (kind, the short field-level diff)."""
    try:
        plain = decode(stored)
    except CorruptFrameError as exc:
        return "unparseable", (f"corrupt compression frame: {exc}",)
    if expected is None:
        return "missing", ()
    if raw:
        if plain == expected:
            return None, ()
        return "different", _scalar_diff(ns.warm.value if ns.warm else None, plain, expected, ns)
    try:
        have = json.loads(plain)
    except (ValueError, RecursionError):
        return "unparseable", ("the cached value is not JSON",)
    want = json.loads(expected)
    if have == want and _canonical(have) == _canonical(want):
        return None, ()
    return "different", field_diff(have, want, ns)


def _canonical(value: Any) -> str:
    # == alone holds True == 1 and 1 == 1.0; the canonical text tells them apart
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def field_diff(have: Any, want: Any, ns: Namespace) -> tuple[str, ...]:
    """``field: cached -> source`` per differing field (at most DIFF_LINES, then ``…``);
    a field the namespace marks private is named without its values."""
    if not (isinstance(have, dict) and isinstance(want, dict)):
        return _scalar_diff(ns.warm.value if ns.warm else None, have, want, ns)
    lines = []
    for name in sorted(set(have) | set(want), key=str):
        old, new = have.get(name, _ABSENT), want.get(name, _ABSENT)
        if old is not _ABSENT and new is not _ABSENT and _canonical(old) == _canonical(new):
            continue
        if name in ns.private:
            lines.append(f"{name}: (private, differs)")
        else:
            lines.append(f"{name}: {_shown(old)} -> {_shown(new)}")
    if len(lines) > DIFF_LINES:
        lines = [*lines[:DIFF_LINES], f"… and {len(lines) - DIFF_LINES} more fields"]
    return tuple(lines)


def _scalar_diff(name: str | None, have: Any, want: Any, ns: Namespace) -> tuple[str, ...]:
    label = name or "value"
    if name is not None and name in ns.private:
        return (f"{label}: (private, differs)",)
    return (f"{label}: {_shown(have)} -> {_shown(want)}",)


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, bytes):
        text = value.decode("utf-8", "backslashreplace")
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def _record(client: Any, policy: Policy, results: Iterable[NamespaceVerify],
            now_s: float) -> str | None:
    """HSET each namespace's result in ``record_key``; the error text if Redis refused."""
    import redis.exceptions as rex

    when = datetime.fromtimestamp(now_s, UTC).isoformat(timespec="seconds")
    fields = {}
    for n in results:
        inconsistent = n.estimate("inconsistent")
        fields[n.namespace] = json.dumps({
            "time": when, "checked": n.checked, "keys": n.keys, "identical": n.identical,
            "different": n.count("different"), "missing": n.count("missing"),
            "unparseable": n.count("unparseable"), "inconsistent_fresh": n.inconsistent_fresh,
            "inconsistency": inconsistent.to_json(), "exceeded": n.exceeded})
    if not fields:
        return None
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hset(record_key(policy), mapping=fields)
        pipe.expire(record_key(policy), RECORD_TTL_S)
        pipe.execute()
    except rex.NoPermissionError as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def read_records(client: Any, policy: Policy) -> dict[str, dict[str, Any]]:
    """The last recorded verify result of each namespace (``{}`` when none was)."""
    raw = client.hgetall(record_key(policy))
    if isinstance(raw, list):  # a flat [field, value, …] reply: fakeredis's server (demo --embedded)
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    out: dict[str, dict[str, Any]] = {}
    for name, text in raw.items():
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out[name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else
                str(name)] = doc
    return out


def fix_namespaces(client: Any, policy: Policy, report: VerifyReport, *,
                   rate: float | None = None, batch: int = 1000,
                   rng: random.Random | None = None,
                   on_progress: ProgressCallback = no_progress) -> FixResult:
    """Rewrite each differing key from its source row (SET … PX, the TTL a write under the
    policy draws, compressed as the namespace says) and UNLINK each key whose row is gone;
    ``batch`` keys per round trip, at most ``rate`` keys per second (as flush paces)."""
    check_pacing(rate, batch)
    limiter = RateLimiter(rate)
    draw = rng or random.Random()
    started = time.monotonic()
    rewritten = removed = done = 0
    total = report.repairs
    for result in report.namespaces:
        ns = policy.namespace(result.namespace)
        repairs = list(result.repairs)
        for start in range(0, len(repairs), batch):
            part = repairs[start:start + batch]
            limiter.wait(len(part))
            gone = [r.key for r in part if r.stored is None]
            sets = [r for r in part if r.stored is not None]
            if sets:
                pipe = client.pipeline(transaction=False)
                for r in sets:
                    pipe.set(r.key, r.stored, px=write_ttl_ms(ns, draw))
                pipe.execute()
                rewritten += len(sets)
            if gone:
                removed += unlink_keys(client, gone)
            done += len(part)
            on_progress("fix", done, total)
    return FixResult(rewritten, removed, time.monotonic() - started)
