"""Which keys are a flush target's, and how a flush reads them.

``_owner_regex`` / ``target_selector``: the exact ownership test (the target's regex, no
earlier overlapping namespace, never cachectl's own keys) as compiled regexes applied
to whole SCAN batches in C. ``ScanAhead``: every primary's SCAN issued by a thread,
one reply ahead of the consumer. ``regroup_batches``: per-SCAN key lists regrouped into full
batches; ``shared_batches``: the same for several targets read by one walk, whose
glob (``union_glob``) covers them all.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cachectl.flush.targets import FlushTarget
from cachectl.keyspace import NamespaceMatcher
from cachectl.keyspace.matcher import glob_matcher
from cachectl.policy.model import Policy
from cachectl.policy.template import escape_glob


def _internal(policy: Policy) -> bytes:
    return policy.internal_prefix.encode() + b":"


def is_owned(policy: Policy, matcher: NamespaceMatcher, target: FlushTarget, key: bytes) -> bool:
    """Whether ``key`` is the target's to flush (never cachectl's own keys)."""
    if key.startswith(_internal(policy)):
        return False
    if target.kind == "pattern":
        return True
    owner = matcher.namespace_of(key)
    return owner is not None and owner.name == target.name


def _unnamed(pattern: bytes) -> bytes:
    """A template regex with its named groups made plain (to combine several)."""
    return re.sub(rb"\(\?P<[A-Za-z_][A-Za-z0-9_]*>", b"(?:", pattern)


def _owner_regex(policy: Policy, target: FlushTarget) -> re.Pattern[bytes] | None:
    """One compiled test for "this key, which the target's regex accepts, is its to flush".

    Only namespaces listed before the target whose templates can overlap it can take
    one of its keys away (the policy's first matching namespace owns a key), and a key
    under ``internal_prefix`` is never anyone's. Both become negative look-aheads in
    front of the target's own regex, so a whole SCAN batch is filtered in C. None when
    neither can happen (no such rival, and the template's literal prefix rules out the
    internal one): then every key the target's regex accepts is the target's.
    """
    ns = policy.namespace(target.name)
    internal = _internal(policy)
    rivals: list[bytes] = []
    for other in policy.namespaces.values():
        if other.name == ns.name:
            break
        if other.template.can_overlap(ns.template):
            rivals.append(_unnamed(other.template.regex.pattern))
    literal = ns.template.literal_prefix.encode()
    # a key starts with the literal prefix; it can start with `internal` only if one of
    # the two starts with the other
    internal_possible = literal.startswith(internal) or internal.startswith(literal)
    if not rivals and not internal_possible:
        return None
    guard = b"(?!" + re.escape(internal) + b")" if internal_possible else b""
    if rivals:
        guard += b"(?!(?:" + b"|".join(rivals) + rb")\Z)"
    return re.compile(guard + _unnamed(ns.template.regex.pattern), re.DOTALL)


def owner_test(policy: Policy, target: FlushTarget) -> Callable[[bytes], bool]:
    """A per-key test equal to ``is_owned`` for keys the target's exact regex accepts."""
    internal = _internal(policy)
    if target.kind == "pattern":
        return lambda k: not k.startswith(internal)
    rx = _owner_regex(policy, target)
    if rx is None:
        return lambda k: True
    fullmatch = rx.fullmatch
    return lambda k: fullmatch(k) is not None


Selector = Callable[[list[bytes]], tuple[list[bytes], int]]


def target_selector(policy: Policy, target: FlushTarget) -> Selector:
    """``keys -> (the target's own keys, how many others its exact regex accepted)``.

    ``keys`` come from SCAN with the target's glob (which only narrows). Keys the exact
    regex rejects are dropped silently; keys it accepts that another namespace (or
    cachectl itself) owns are counted, never returned. Filtering runs in C
    (``filter`` over compiled regexes): a flush handles millions of keys.
    """
    internal = _internal(policy)
    if target.kind == "pattern":
        def by_prefix(keys: list[bytes]) -> tuple[list[bytes], int]:
            own = [k for k in keys if not k.startswith(internal)]
            return own, len(keys) - len(own)
        return by_prefix
    exact = policy.namespace(target.name).template.regex.fullmatch
    owner = _owner_regex(policy, target)
    if owner is None:
        def by_regex(keys: list[bytes]) -> tuple[list[bytes], int]:
            return list(filter(exact, keys)), 0
        return by_regex
    owns = owner.fullmatch

    def by_owner(keys: list[bytes]) -> tuple[list[bytes], int]:
        hits = list(filter(exact, keys))
        own = list(filter(owns, hits))
        return own, len(hits) - len(own)
    return by_owner


def target_glob(policy: Policy, target: FlushTarget) -> str:
    """The SCAN MATCH glob of a namespace or pattern target."""
    if target.kind == "pattern":
        return target.name
    return policy.namespace(target.name).template.glob


_CLASS_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.")


def union_glob(policy: Policy, targets: Sequence[FlushTarget]) -> str:
    """One SCAN MATCH glob that every key of every namespace target matches.

    One target: its own glob. Several: the literal prefixes their keys start with,
    merged position by position, a shared character as itself and differing ones as a
    class, until one prefix ends or a character is not a plain one; then ``*``
    (``shop:product:`` and ``shop:banner:`` give ``shop:[bp][ar][no][dn][eu][cr][:t]*``).
    Every key of every target matches it (it can match more: the exact matchers decide),
    and the server replies with fewer keys than a SCAN without MATCH.
    """
    if len(targets) == 1:
        return target_glob(policy, targets[0])
    if any(t.kind != "namespace" for t in targets):
        raise ValueError("union_glob takes namespace targets only")
    prefixes = [policy.namespace(t.name).template.literal_prefix for t in targets]
    out = []
    for chars in zip(*prefixes, strict=False):  # up to the end of the shortest
        distinct = sorted(set(chars))
        if len(distinct) == 1:
            out.append(escape_glob(distinct[0]))
        elif all(c in _CLASS_SAFE for c in distinct):
            out.append("[" + "".join(distinct) + "]")
        else:
            break
    return "".join(out) + "*"


def sample_filter(policy: Policy, target: FlushTarget) -> Callable[[list[bytes]], list[bytes]]:
    """The keys of an unfiltered SCAN batch that are the target's to flush."""
    select = target_selector(policy, target)
    if target.kind == "pattern":
        glob = glob_matcher(target.name)
        return lambda keys: select([k for k in keys if glob(k)])[0]
    return lambda keys: select(keys)[0]


def primary_nodes(client: Any) -> list[Any]:
    from cachectl.connection import primaries

    return primaries(client)


class ScanAhead:
    """Iterate ``(node, keys)`` SCAN replies (every node, full walk) read by a thread.

    A SCAN's next call needs the last reply's cursor, so one connection alone leaves
    the server idle while the client parses and filters. Here a thread issues the
    SCANs back to back, at most ``depth`` replies ahead of the consumer, which the
    bounded queue enforces. Reading is harmless: keys a SCAN returns are only acted
    on after the consumer has them. Errors reach the consumer in order; ``close()``
    stops the thread after its SCAN in flight.
    """

    def __init__(self, nodes: Sequence[Any], match: str, count: Callable[[], int],
                 depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(list(nodes), match, count),
                                        name="cachectl-flush-scan", daemon=True)
        self._thread.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, nodes: list[Any], match: str, count: Callable[[], int]) -> None:
        last: tuple[str, Any] = ("end", None)
        try:
            for node in nodes:
                cursor = 0
                while not self._stop.is_set():
                    cursor, keys = node.scan(cursor=cursor, match=match, count=count())
                    if keys and not self._put(("keys", (node, keys))):
                        return
                    if cursor == 0:
                        break
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            last = ("error", exc)
        self._put(last)

    def __iter__(self) -> Iterator[tuple[Any, list[bytes]]]:
        while True:
            try:
                kind, value = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self._thread.is_alive():
                    continue
                raise RuntimeError("the SCAN thread ended without a word") from None
            if kind == "keys":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def shared_batches(scans: Iterator[tuple[Any, list[bytes]]],
                   selectors: Sequence[tuple[FlushTarget, Selector]],
                   size: Callable[[], int], on_other: Callable[[FlushTarget, int], None],
                   ) -> Iterator[tuple[Any, FlushTarget, list[bytes]]]:
    """One SCAN walk's replies split among several targets: ``(node, target, keys)``.

    Each reply goes through every target's selector (a key is at most one target's: its
    first owner in policy order); each target's keys gather into batches of ``size()``
    (read before each one) as ``regroup_batches`` does. Batches never mix nodes or
    targets; ``on_other(target, n)`` gets the keys a selector counted as another's.
    """
    pending: dict[FlushTarget, list[bytes]] = {t: [] for t, _ in selectors}
    current: Any = None
    for node, keys in scans:
        if node is not current:
            for target, buf in pending.items():
                if buf:
                    pending[target] = []
                    yield current, target, buf
            current = node
        for target, select in selectors:
            own, other = select(keys)
            if other:
                on_other(target, other)
            if not own:
                continue
            buf = pending[target]
            buf.extend(own)
            while len(buf) >= size():
                n = size()
                chunk = buf[:n]
                del buf[:n]
                yield node, target, chunk
    for target, buf in pending.items():
        if buf:
            pending[target] = []
            yield current, target, buf


def regroup_batches(batches: Iterator[tuple[Any, list[bytes]]],
            size: Callable[[], int]) -> Iterator[tuple[Any, list[bytes]]]:
    """Regroup per-SCAN key lists into batches of ``size()`` keys (read before each one).

    A sparse namespace yields a few keys per SCAN; gathering them keeps every UNLINK
    full. A node's last batch may be smaller: batches never mix nodes.
    """
    pending: list[bytes] = []
    current: Any = None
    for node, keys in batches:
        if pending and node is not current:
            yield current, pending
            pending = []
        current = node
        pending.extend(keys)
        while len(pending) >= size():
            n = size()
            chunk, pending = pending[:n], pending[n:]
            yield node, chunk
    if pending:
        yield current, pending
