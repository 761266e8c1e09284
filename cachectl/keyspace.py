"""The keyspace: which namespace a key belongs to, streaming SCAN, and batched per-key facts.

Keys are bytes end to end (they may hold any bytes, including non-UTF-8). A key is
attributed to exactly one namespace: the first, in policy order, whose exact
matcher accepts it; SCAN's MATCH glob only narrows the search.

Two ways to learn about many keys:

- ``key_facts`` / ``scan_facts``: every fact of every key (type, PTTL, memory,
  encoding, idle time), one pipelined round trip per batch. For listings.
- ``survey_keyspace``: the whole keyspace aggregated per namespace. One EVAL per
  batch runs SCAN, MEMORY USAGE and PTTL on the server and returns only totals
  (counts, bytes, TTL histogram, findings with a few example keys), so memory stays
  flat and nothing per key crosses the network. The batch size adapts so each call
  stays within a few milliseconds of server time. When scripting is refused (an ACL
  without ``+eval``) the same figures are computed from pipelined commands.

Nothing here uses KEYS, DEBUG or CONFIG; nothing touches a key's LRU clock except
STRLEN on the rare string that is over its namespace's ``max_value_bytes``.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions as rex

from cachectl.connection import node_name, primaries
from cachectl.freshness import ttl_bounds_ms
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Namespace, Policy
from cachectl.policy.template import HASH_MODIFIER, KeyTemplate
from cachectl.progress import ProgressCallback, no_progress

DEFAULT_SCAN_COUNT = 1000
HIST_BASE = 1.01  # TTL histogram bucket ratio: medians are within 0.5 % of the true value
BATCH_TARGET_S = 0.005  # each server-side call runs about 5 ms, then yields
MIN_BATCH, MAX_BATCH = 100, 5000
INNER_COUNT = 256  # SCAN COUNT per iteration inside a time-budgeted script call
PARALLEL_MIN_KEYS = 10_000  # below this a node is scanned in one lane
# SCAN walks buckets in reverse-binary order, so the cursor's two lowest bits split the
# walk into four consecutive quarters whatever the table size: 00, 10, 01, 11
LANES = 4
LANE_STARTS = (0, 2, 1, 3)
SAMPLE_RUN = 2000  # a sample reads runs of about this many keys from random cursors
SHARE_FACTOR = 5  # --sample N classifies SHARE_FACTOR·N keys and measures N of them
UNMATCHED = "(unmatched)"


class NamespaceMatcher:
    """Attributes keys to namespaces with one compiled alternation."""

    def __init__(self, namespaces: Iterable[Namespace]) -> None:
        self.namespaces: tuple[Namespace, ...] = tuple(namespaces)
        self._by_group: dict[str, Namespace] = {}
        parts = []
        for i, ns in enumerate(self.namespaces):
            group = f"n{i}"
            self._by_group[group] = ns
            body = re.sub(rb"\(\?P<[A-Za-z_][A-Za-z0-9_]*>", b"(?:", ns.template.regex.pattern)
            parts.append(b"(?P<" + group.encode() + b">" + body + b")")
        self._regex = re.compile(b"|".join(parts), re.DOTALL) if parts else None

    @classmethod
    def from_policy(cls, policy: Policy) -> NamespaceMatcher:
        return cls(policy.namespaces.values())

    def namespace_of(self, key: bytes) -> Namespace | None:
        """The namespace owning ``key``, or None."""
        if self._regex is None:
            return None
        m = self._regex.fullmatch(key)
        if m is None or m.lastgroup is None:
            return None
        return self._by_group[m.lastgroup]


def lua_pattern(template: KeyTemplate) -> str:
    """The template as an anchored Lua pattern that accepts exactly what ``template.regex`` does."""
    def lit(text: str) -> str:
        # every non-alphanumeric byte is escaped with %; Lua then takes it literally
        return "".join(ch if ch.isascii() and ch.isalnum() else "%" + ch for ch in text)

    parts = []
    for seg in template.segments:
        if seg.placeholder is None:
            parts.append(lit(seg.prefix))
        else:
            body = "[0-9a-f]" * 16 if seg.modifier == HASH_MODIFIER else "[^:]+"
            parts.append(lit(seg.prefix) + body + lit(seg.suffix))
    return "^" + ":".join(parts) + "$"


def scan_keys(
    client: Any,
    match: str | bytes | None = None,
    *,
    count: int = DEFAULT_SCAN_COUNT,
    limiter: RateLimiter | None = None,
    scan_type: str | None = None,
) -> Iterator[tuple[Any, list[bytes]]]:
    """Yield ``(node_client, keys)`` batches from a SCAN of every primary.

    A key may appear twice if the keyspace is rehashed during the scan (SCAN's own
    guarantee); callers that count must tolerate that or deduplicate per batch.
    """
    for node in primaries(client):
        cursor = 0
        while True:
            cursor, keys = node.scan(cursor=cursor, match=match, count=count, _type=scan_type)
            if keys:
                if limiter is not None:
                    limiter.wait(len(keys))
                yield node, keys
            if cursor == 0:
                break


def scan_namespace(
    client: Any,
    ns: Namespace,
    *,
    count: int = DEFAULT_SCAN_COUNT,
    limiter: RateLimiter | None = None,
) -> Iterator[tuple[Any, list[bytes]]]:
    """Yield ``(node_client, keys)`` batches of keys that belong to ``ns`` exactly.

    The glob narrows the scan; the exact matcher drops keys of other namespaces that
    share a prefix (``product:reviews:7`` when scanning ``product:{id}``).
    """
    regex = ns.template.regex
    for node, keys in scan_keys(client, ns.template.glob, count=count, limiter=limiter):
        kept = [k for k in keys if regex.fullmatch(k)]
        if kept:
            yield node, kept


# --------------------------------------------------------------------------- per-key facts


@dataclass(frozen=True)
class KeyFacts:
    """What the server says about one key. ``pttl_ms``: -1 no expiry, -2 gone.

    ``memory_bytes`` is MEMORY USAGE (default sampling); ``idle_s`` is None when the
    server runs an LFU policy (OBJECT IDLETIME is refused then) or the key is gone.
    """

    key: bytes
    type: str
    pttl_ms: int
    memory_bytes: int | None
    encoding: str | None
    idle_s: int | None
    node: str

    @property
    def exists(self) -> bool:
        return self.type != "none" and self.pttl_ms != -2


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def key_facts(node_client: Any, keys: Sequence[bytes]) -> list[KeyFacts]:
    """Facts of ``keys`` on one node in one pipelined round trip (no LRU touch).

    A key that vanished meanwhile comes back with type ``none`` and PTTL -2; a
    per-key error (an ACL denying the key) leaves that fact None. Connection errors
    propagate (callers wrap them with ``redis_errors``).
    """
    if not keys:
        return []
    pipe = node_client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.pttl(key)
        pipe.memory_usage(key)
        pipe.object("encoding", key)
        pipe.object("idletime", key)
    replies = pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, rex.ConnectionError | rex.TimeoutError):
            raise reply
    name = node_name(node_client)
    out = []
    for i, key in enumerate(keys):
        typ, pttl, mem, enc, idle = replies[5 * i:5 * i + 5]
        type_text = _text(typ) or "none"
        pttl_ms = _int(pttl)
        out.append(KeyFacts(
            key=key, type=type_text, pttl_ms=-2 if pttl_ms is None else pttl_ms,
            memory_bytes=_int(mem), encoding=_text(enc), idle_s=_int(idle), node=name))
    return out


def scan_facts(
    client: Any,
    match: str | None = None,
    *,
    keep: Callable[[bytes], bool] | None = None,
    count: int = DEFAULT_SCAN_COUNT,
    limiter: RateLimiter | None = None,
) -> Iterator[list[KeyFacts]]:
    """Yield batches of facts for the keys SCAN finds (``keep`` filters keys first).

    Keys that expire between SCAN and the facts are dropped.
    """
    for node, keys in scan_keys(client, match, count=count, limiter=limiter):
        kept = [k for k in keys if keep is None or keep(k)]
        facts = [f for f in key_facts(node, kept) if f.exists]
        if facts:
            yield facts


# --------------------------------------------------------------------------- the survey

# One batch of the survey, run on the server. It never writes; it reads only keys
# that SCAN returned on this node, so it needs no KEYS (and works per cluster node).
# It repeats SCAN from the returned cursor until its time budget is spent (measured
# with TIME), so each call holds the server for about that long and no longer.
#   ARGV[1] cursor          ARGV[2] SCAN COUNT per iteration
#   ARGV[3] measure stride: 1 measures every key, k every k-th (sampling)
#   ARGV[4] stride offset   ARGV[5] how many biggest keys to return
#   ARGV[6] example keys per finding
#   ARGV[7] cachectl's internal key prefix with its ':' ('' for none)
#   ARGV[8] log of the TTL histogram base
#   ARGV[9] time budget in microseconds (0: one SCAN only)
#   ARGV[10] lane mask ('0': one lane covers everything; '3': four lanes)
#   ARGV[11] the cursor's low bits this lane owns   ARGV[12] the next lane's start cursor
#   ARGV[13] stop once this many keys were read (0: no limit)
#   then 5 per namespace, in policy order: Lua pattern, grace ms, stale ms,
#   highest PTTL a write can set, max value bytes (0: unlimited)
# Returns {cursor, {scanned, measured, gone, denied, internal_seen, internal_mem, server µs},
#          per-namespace records, unmatched shape records, biggest keys}.
SURVEY_LUA = r"""
local call, pcall_, find, floor, log = redis.call, redis.pcall, string.find, math.floor, math.log
local function now_us()
  local t = pcall_('TIME')
  if type(t) ~= 'table' or not t[1] then return nil end
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local started = now_us()
local cursor, count = ARGV[1], ARGV[2]
local stride, offset = tonumber(ARGV[3]), tonumber(ARGV[4])
local topn, nex = tonumber(ARGV[5]), tonumber(ARGV[6])
local internal = ARGV[7]
local ilen = #internal
-- an anchored pattern fails at the first differing byte and allocates nothing
local ipat = '^' .. string.gsub(internal, '%W', '%%%0')
local logb = tonumber(ARGV[8])
local budget = tonumber(ARGV[9])
local lane_mod = tonumber(ARGV[10]) + 1
local lane_val = tonumber(ARGV[11])
local next_start = ARGV[12]
local max_keys = tonumber(ARGV[13])
local FIRST = 13
local pats, grace, stale, maxp, maxv = {}, {}, {}, {}, {}
local nns = (#ARGV - FIRST) / 5
for i = 1, nns do
  local b = FIRST + (i - 1) * 5
  pats[i] = ARGV[b + 1]
  grace[i] = tonumber(ARGV[b + 2])
  stale[i] = tonumber(ARGV[b + 3])
  maxp[i] = tonumber(ARGV[b + 4])
  maxv[i] = tonumber(ARGV[b + 5])
end
local ns = {}
local shapes, order = {}, {}
local top = {}
local scanned, measured, gone, denied, iseen, imem = 0, 0, 0, 0, 0, 0

local function shape_of(k)
  local parts = {}
  for seg in string.gmatch(k .. ':', '([^:]*):') do
    if #seg > 40 or string.find(seg, '[^%a_%-%.]') then
      parts[#parts + 1] = '*'
    else
      parts[#parts + 1] = seg
    end
  end
  return table.concat(parts, ':')
end

local function push_top(k, mem, i)
  local n = #top
  if n >= topn and mem <= top[n][2] then return end
  local pos = n + 1
  while pos > 1 and top[pos - 1][2] < mem do pos = pos - 1 end
  table.insert(top, pos, {k, mem, i})
  if #top > topn then table.remove(top) end
end

local function survey(keys)
for _, k in ipairs(keys) do
  scanned = scanned + 1
  local idx = scanned
  local i = 0
  if ilen > 0 and find(k, ipat) then
    i = -1
  else
    for j = 1, nns do
      if find(k, pats[j]) then i = j break end
    end
  end
  local rec
  if i > 0 then
    rec = ns[i]
    if rec == nil then
      rec = {i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, {}, {}, {}, {}}
      ns[i] = rec
    end
    rec[2] = rec[2] + 1
  elseif i == 0 then
    local s = shape_of(k)
    rec = shapes[s]
    if rec == nil then
      rec = {s, 0, 0, 0, 0, k}
      shapes[s] = rec
      order[#order + 1] = s
    end
    rec[2] = rec[2] + 1
  else
    iseen = iseen + 1
  end
  if stride == 1 or idx % stride == offset then
    local mem = pcall_('MEMORY', 'USAGE', k)
    if type(mem) == 'table' then
      denied = denied + 1
    elseif not mem then
      gone = gone + 1
    else
      local pttl = call('PTTL', k)
      if pttl == -2 then
        gone = gone + 1
      else
        measured = measured + 1
        if i > 0 then
          rec[3] = rec[3] + 1
          rec[4] = rec[4] + mem
          rec[5] = rec[5] + mem * mem
          if pttl == -1 then
            rec[6] = rec[6] + 1
            if #rec[15] < nex then rec[15][#rec[15] + 1] = k end
          else
            if pttl > grace[i] then rec[7] = rec[7] + 1
            elseif pttl > grace[i] - stale[i] then rec[8] = rec[8] + 1
            elseif pttl > 0 then rec[9] = rec[9] + 1 end
            if pttl > maxp[i] then
              rec[10] = rec[10] + 1
              if #rec[16] < 2 * nex then
                rec[16][#rec[16] + 1] = k
                rec[16][#rec[16] + 1] = pttl
              end
            end
            if rec[12] < 0 or pttl < rec[12] then rec[12] = pttl end
            if pttl > rec[13] then rec[13] = pttl end
            if pttl > 0 then
              local b = floor(log(pttl) / logb)
              rec[14][b] = (rec[14][b] or 0) + 1
            end
          end
          if maxv[i] > 0 and mem > maxv[i] then
            local size = mem
            local t = redis.pcall('TYPE', k)
            if type(t) == 'table' and t['ok'] == 'string' then
              local len = redis.pcall('STRLEN', k)
              if type(len) == 'number' then size = len end
            end
            if size > maxv[i] then
              rec[11] = rec[11] + 1
              if #rec[17] < 2 * nex then
                rec[17][#rec[17] + 1] = k
                rec[17][#rec[17] + 1] = size
              end
            end
          end
        elseif i == 0 then
          rec[3] = rec[3] + 1
          rec[4] = rec[4] + mem
          rec[5] = rec[5] + mem * mem
        else
          imem = imem + mem
        end
        if i >= 0 and topn > 0 then push_top(k, mem, i) end
      end
    end
  end
end

end

-- does this lane own cursor c? (100 is a multiple of 4: the last two digits decide)
local function owns(c)
  return lane_mod == 1 or (c ~= '0' and tonumber(string.sub(c, -2)) % lane_mod == lane_val)
end
local last_lane = next_start == '0'
repeat
  local reply = call('SCAN', cursor, 'COUNT', count)
  if not last_lane and not owns(reply[1]) then
    -- This SCAN crossed into the next lane's buckets. Redo it one step at a time
    -- (COUNT 1 returns the keys of one dictScan step, whose buckets all share the
    -- cursor's low bits) and keep the steps that are ours: the step after this
    -- lane's last bucket returns exactly the next lane's start cursor.
    local c = cursor
    while true do
      local step = call('SCAN', c, 'COUNT', 1)
      c = step[1]
      if owns(c) or c == next_start then survey(step[2]) end
      if not owns(c) then break end
    end
    reply = {c, {}}
  end
  cursor = reply[1]
  survey(reply[2])
  local now = now_us()
until cursor == '0' or not owns(cursor) or (max_keys > 0 and scanned >= max_keys)
  or budget <= 0 or started == nil or now == nil or now - started >= budget

local out_ns = {}
for _, rec in pairs(ns) do
  local hist = {}
  for b, c in pairs(rec[14]) do
    hist[#hist + 1] = b
    hist[#hist + 1] = c
  end
  rec[14] = hist
  rec[5] = string.format('%.0f', rec[5])
  out_ns[#out_ns + 1] = rec
end
local out_shapes = {}
for _, s in ipairs(order) do
  local rec = shapes[s]
  rec[5] = string.format('%.0f', rec[5])
  out_shapes[#out_shapes + 1] = rec
end
local out_top = {}
for _, t in ipairs(top) do
  out_top[#out_top + 1] = t[1]
  out_top[#out_top + 1] = t[2]
  out_top[#out_top + 1] = t[3]
end
local finished = now_us()
local us = -1
if started and finished then us = finished - started end
return {cursor, {scanned, measured, gone, denied, iseen, imem, us}, out_ns, out_shapes, out_top}
"""


@dataclass
class _NsAcc:
    seen: int = 0
    keys: int = 0
    memory: int = 0
    memory_sq: int = 0
    no_ttl: int = 0
    fresh: int = 0
    stale: int = 0
    fail_safe: int = 0
    too_long: int = 0
    oversize: int = 0
    ttl_min: int = -1
    ttl_max: int = -1
    hist: dict[int, int] = field(default_factory=dict)
    ex_no_ttl: list[bytes] = field(default_factory=list)
    ex_too_long: list[tuple[bytes, int]] = field(default_factory=list)
    ex_oversize: list[tuple[bytes, int]] = field(default_factory=list)


@dataclass
class _ShapeAcc:
    seen: int = 0
    keys: int = 0
    memory: int = 0
    memory_sq: int = 0
    example: bytes = b""


@dataclass(frozen=True)
class NamespaceTally:
    """A namespace's totals from a survey (measured keys only, except ``seen``).

    ``ttl_histogram`` maps bucket b to how many keys have ``HIST_BASE**b <= PTTL <
    HIST_BASE**(b+1)``; examples are (key, figure) pairs: PTTL ms or value bytes.
    """

    name: str
    seen: int
    keys: int
    memory_bytes: int
    memory_sq: int
    no_ttl: int
    fresh: int
    stale: int
    fail_safe: int
    ttl_too_long: int
    oversize: int
    ttl_min_ms: int | None
    ttl_max_ms: int | None
    ttl_histogram: tuple[tuple[int, int], ...]
    examples_no_ttl: tuple[bytes, ...]
    examples_ttl_too_long: tuple[tuple[bytes, int], ...]
    examples_oversize: tuple[tuple[bytes, int], ...]

    def ttl_median_ms(self) -> int | None:
        """The median PTTL of keys that expire, to within half a histogram bucket."""
        total = sum(c for _, c in self.ttl_histogram)
        if total == 0 or self.ttl_min_ms is None or self.ttl_max_ms is None:
            return None
        rank = (total + 1) / 2
        running = 0
        for bucket, count in sorted(self.ttl_histogram):
            running += count
            if running >= rank:
                mid: int = round(HIST_BASE ** (bucket + 0.5))
                return min(max(mid, self.ttl_min_ms), self.ttl_max_ms)
        return self.ttl_max_ms


@dataclass(frozen=True)
class ShapeTally:
    """Keys that match no namespace, grouped by their shape (``order:*:items``)."""

    pattern: str
    seen: int
    keys: int
    memory_bytes: int
    memory_sq: int
    example: bytes


@dataclass(frozen=True)
class BigKey:
    key: bytes
    memory_bytes: int
    namespace: str | None


@dataclass(frozen=True)
class NodeFigures:
    """One primary at the start of a survey: its key count (DBSIZE) and used memory."""

    node: str
    keys: int
    used_memory_bytes: int


@dataclass(frozen=True)
class KeyspaceSurvey:
    """The whole keyspace aggregated per namespace (see ``survey_keyspace``).

    ``sampled``: False when every key was measured. ``scanned`` keys were read from
    SCAN and attributed; ``measured`` had MEMORY USAGE and PTTL taken; ``gone`` expired
    between the two; ``denied`` were refused by an ACL. ``total_keys`` is DBSIZE summed
    over the primaries at the start.
    """

    namespaces: tuple[NamespaceTally, ...]
    unmatched: tuple[ShapeTally, ...]
    biggest: tuple[BigKey, ...]
    sampled: bool
    scanned: int
    measured: int
    gone: int
    denied: int
    internal_keys: int
    internal_bytes: int
    total_keys: int
    used_memory_bytes: int
    nodes: tuple[NodeFigures, ...]
    elapsed_s: float
    method: str  # "lua" or "pipeline"
    live_keys: float = 0.0  # DBSIZE less the share Redis reports as expired, not yet reclaimed


class _Survey:
    """Mutable accumulator; ``freeze()`` returns the KeyspaceSurvey."""

    def __init__(self, namespaces: Sequence[Namespace], top: int, examples: int) -> None:
        self.namespaces = list(namespaces)
        self.acc = [_NsAcc() for _ in self.namespaces]
        self.shapes: dict[str, _ShapeAcc] = {}
        self.top: list[BigKey] = []
        self.top_n = top
        self.examples = examples
        self.scanned = self.measured = self.gone = self.denied = 0
        self.internal_keys = self.internal_bytes = 0

    def merge_lua(self, counters: list[int], ns_recs: list[Any], shape_recs: list[Any],
                  top: list[Any]) -> None:
        scanned, measured, gone, denied, iseen, imem = counters[:6]
        self.scanned += scanned
        self.measured += measured
        self.gone += gone
        self.denied += denied
        self.internal_keys += iseen
        self.internal_bytes += imem
        for rec in ns_recs:
            a = self.acc[int(rec[0]) - 1]
            a.seen += rec[1]
            a.keys += rec[2]
            a.memory += rec[3]
            a.memory_sq += int(rec[4])
            a.no_ttl += rec[5]
            a.fresh += rec[6]
            a.stale += rec[7]
            a.fail_safe += rec[8]
            a.too_long += rec[9]
            a.oversize += rec[10]
            self._ttl_range(a, rec[11], rec[12])
            hist = rec[13]
            for j in range(0, len(hist), 2):
                a.hist[hist[j]] = a.hist.get(hist[j], 0) + hist[j + 1]
            room = self.examples - len(a.ex_no_ttl)
            a.ex_no_ttl.extend(rec[14][:max(room, 0)])
            self._pairs(a.ex_too_long, rec[15])
            self._pairs(a.ex_oversize, rec[16])
        for rec in shape_recs:
            self._shape(rec[0].decode("utf-8", "backslashreplace"), rec[1], rec[2], rec[3],
                        int(rec[4]), rec[5])
        for j in range(0, len(top), 3):
            idx = int(top[j + 2])
            name = self.namespaces[idx - 1].name if idx > 0 else None
            self._big(BigKey(top[j], int(top[j + 1]), name))

    def _ttl_range(self, a: _NsAcc, low: int, high: int) -> None:
        if low >= 0 and (a.ttl_min < 0 or low < a.ttl_min):
            a.ttl_min = low
        if high > a.ttl_max:
            a.ttl_max = high

    def _pairs(self, into: list[tuple[bytes, int]], flat: list[Any]) -> None:
        for j in range(0, len(flat), 2):
            if len(into) < self.examples:
                into.append((flat[j], int(flat[j + 1])))

    def _shape(self, pattern: str, seen: int, keys: int, mem: int, mem_sq: int,
               example: bytes) -> None:
        s = self.shapes.get(pattern)
        if s is None:
            s = self.shapes[pattern] = _ShapeAcc(example=example)
        s.seen += seen
        s.keys += keys
        s.memory += mem
        s.memory_sq += mem_sq

    def _big(self, big: BigKey) -> None:
        if self.top_n <= 0:
            return
        self.top.append(big)
        if len(self.top) > 4 * self.top_n:
            self._trim()

    def _trim(self) -> None:
        self.top.sort(key=lambda b: (-b.memory_bytes, b.key))
        del self.top[self.top_n:]

    # the same per-key logic as SURVEY_LUA, for servers that refuse scripts
    def add_python(self, node: Any, keys: list[bytes], stride: int, offset: int,
                   internal: bytes, matcher: NamespaceMatcher) -> None:
        index = {ns.name: i for i, ns in enumerate(self.namespaces)}
        owners: list[int] = []
        for key in keys:
            self.scanned += 1
            if internal and key.startswith(internal):
                owners.append(-1)
                self.internal_keys += 1
                continue
            ns = matcher.namespace_of(key)
            i = index[ns.name] if ns is not None else -2
            owners.append(i)
            if i >= 0:
                self.acc[i].seen += 1
            else:
                self._shape(key_shape(key), 1, 0, 0, 0, key)
        chosen = [n for n in range(len(keys)) if stride == 1 or (n + 1) % stride == offset]
        pipe = node.pipeline(transaction=False)
        for n in chosen:
            pipe.memory_usage(keys[n])
            pipe.pttl(keys[n])
        replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, rex.ConnectionError | rex.TimeoutError):
                raise reply
        for j, n in enumerate(chosen):
            mem, pttl = replies[2 * j], replies[2 * j + 1]
            if isinstance(mem, Exception):
                self.denied += 1
                continue
            if mem is None or not isinstance(pttl, int) or pttl == -2:
                self.gone += 1
                continue
            self.measured += 1
            key, i = keys[n], owners[n]
            if i == -1:
                self.internal_bytes += mem
                continue
            if i == -2:
                s = self.shapes[key_shape(key)]
                s.keys += 1
                s.memory += mem
                s.memory_sq += mem * mem
                self._big(BigKey(key, mem, None))
                continue
            self._add_key(node, i, key, mem, pttl)

    def _add_key(self, node: Any, i: int, key: bytes, mem: int, pttl: int) -> None:
        ns, a = self.namespaces[i], self.acc[i]
        a.keys += 1
        a.memory += mem
        a.memory_sq += mem * mem
        if pttl == -1:
            a.no_ttl += 1
            if len(a.ex_no_ttl) < self.examples:
                a.ex_no_ttl.append(key)
        else:
            grace = ns.grace_ms
            if pttl > grace:
                a.fresh += 1
            elif pttl > grace - ns.stale_ms:
                a.stale += 1
            elif pttl > 0:
                a.fail_safe += 1
            if pttl > ttl_bounds_ms(ns)[1]:
                a.too_long += 1
                if len(a.ex_too_long) < self.examples:
                    a.ex_too_long.append((key, pttl))
            self._ttl_range(a, pttl, pttl)
            if pttl > 0:
                b = math.floor(math.log(pttl) / math.log(HIST_BASE))
                a.hist[b] = a.hist.get(b, 0) + 1
        limit = ns.max_value_bytes
        if limit and mem > limit:
            size = mem
            if node.type(key) == b"string":
                size = int(node.strlen(key))
            if size > limit:
                a.oversize += 1
                if len(a.ex_oversize) < self.examples:
                    a.ex_oversize.append((key, size))
        self._big(BigKey(key, mem, ns.name))

    def freeze(self, *, sampled: bool, total_keys: int, used_memory: int,
               nodes: tuple[NodeFigures, ...],
               elapsed_s: float, method: str, live_keys: float) -> KeyspaceSurvey:
        self._trim()
        tallies = []
        for ns, a in zip(self.namespaces, self.acc, strict=True):
            tallies.append(NamespaceTally(
                name=ns.name, seen=a.seen, keys=a.keys, memory_bytes=a.memory,
                memory_sq=a.memory_sq, no_ttl=a.no_ttl, fresh=a.fresh, stale=a.stale,
                fail_safe=a.fail_safe, ttl_too_long=a.too_long, oversize=a.oversize,
                ttl_min_ms=a.ttl_min if a.ttl_min >= 0 else None,
                ttl_max_ms=a.ttl_max if a.ttl_max >= 0 else None,
                ttl_histogram=tuple(sorted(a.hist.items())),
                examples_no_ttl=tuple(a.ex_no_ttl), examples_ttl_too_long=tuple(a.ex_too_long),
                examples_oversize=tuple(a.ex_oversize)))
        shapes = [ShapeTally(p, s.seen, s.keys, s.memory, s.memory_sq, s.example)
                  for p, s in collapse_shapes(self.shapes).items()]
        shapes.sort(key=lambda s: (-s.memory_bytes, -s.seen, s.pattern))
        return KeyspaceSurvey(
            namespaces=tuple(tallies), unmatched=tuple(shapes), biggest=tuple(self.top),
            sampled=sampled, scanned=self.scanned, measured=self.measured, gone=self.gone,
            denied=self.denied, internal_keys=self.internal_keys,
            internal_bytes=self.internal_bytes, total_keys=total_keys,
            used_memory_bytes=used_memory, nodes=nodes, elapsed_s=elapsed_s, method=method,
            live_keys=live_keys)


_VARIABLE_SEGMENT = re.compile(rb"[^A-Za-z_\-.]")


def key_shape(key: bytes) -> str:
    """A key's shape: segments with digits, odd bytes or over 40 bytes become ``*``.

    ``order:1234:items`` -> ``order:*:items``. Mirrors ``shape_of`` in SURVEY_LUA.
    """
    parts = [b"*" if len(seg) > 40 or _VARIABLE_SEGMENT.search(seg) else seg
             for seg in key.split(b":")]
    return b":".join(parts).decode("utf-8", "backslashreplace")


COLLAPSE_DISTINCT = 8  # more distinct words than this in one position: it is a variable


def collapse_shapes(shapes: dict[str, _ShapeAcc]) -> dict[str, _ShapeAcc]:
    """Merge shapes that differ in one position with many distinct words (``user:alice``,
    ``user:bob``, … -> ``user:*``), position by position from the left."""
    current = dict(shapes)
    width = max((p.count(":") + 1 for p in current), default=0)
    for pos in range(width):
        groups: dict[tuple[int, tuple[str, ...]], set[str]] = {}
        for pattern in current:
            segs = pattern.split(":")
            if pos < len(segs) and segs[pos] != "*":
                rest = (len(segs), tuple(segs[:pos] + segs[pos + 1:]))
                groups.setdefault(rest, set()).add(segs[pos])
        wide = {g for g, words in groups.items() if len(words) > COLLAPSE_DISTINCT}
        if not wide:
            continue
        merged: dict[str, _ShapeAcc] = {}
        for pattern, acc in current.items():
            segs = pattern.split(":")
            if pos < len(segs) and (len(segs), tuple(segs[:pos] + segs[pos + 1:])) in wide:
                segs[pos] = "*"
            target = ":".join(segs)
            into = merged.get(target)
            if into is None:
                merged[target] = _ShapeAcc(acc.seen, acc.keys, acc.memory, acc.memory_sq,
                                           acc.example)
            else:
                into.seen += acc.seen
                into.keys += acc.keys
                into.memory += acc.memory
                into.memory_sq += acc.memory_sq
        current = merged
    return current


def _survey_args(policy: Policy, namespaces: Sequence[Namespace], *, cursor: int | bytes,
                 count: int, stride: int, offset: int, top: int, examples: int,
                 budget_us: int, lane: int | None = None, max_keys: int = 0) -> list[Any]:
    internal = policy.internal_prefix + ":"
    args: list[Any] = [cursor, count, stride, offset, top, examples, internal,
                       repr(math.log(HIST_BASE)), budget_us]
    if lane is None:
        args += [0, 0, 0]
    else:
        args += [LANES - 1, LANE_STARTS[lane], LANE_STARTS[(lane + 1) % LANES]]
    args.append(max_keys)
    for ns in namespaces:
        args += [lua_pattern(ns.template), ns.grace_ms, ns.stale_ms, ttl_bounds_ms(ns)[1],
                 ns.max_value_bytes or 0]
    return args


def _scripting_refused(exc: rex.ResponseError) -> bool:
    text = str(exc)
    return isinstance(exc, rex.NoPermissionError) or any(
        marker in text for marker in ("NOPERM", "unknown command", "not allowed", "disabled"))


def _info(node: Any, section: str) -> dict[str, Any]:
    """One INFO section; empty where INFO is not offered (some proxies, embedded servers)."""
    try:
        return dict(node.info(section))
    except rex.ResponseError as exc:
        if "unknown command" in str(exc).lower():
            return {}
        raise


def survey_keyspace(
    client: Any,
    policy: Policy,
    *,
    sample: int | None = None,
    top: int = 10,
    examples: int = 5,
    limiter: RateLimiter | None = None,
    on_progress: ProgressCallback = no_progress,
    clock: Callable[[], float] = time.perf_counter,
    rng: random.Random | None = None,
    use_lua: bool = True,
) -> KeyspaceSurvey:
    """Aggregate every primary's keyspace per namespace of ``policy``.

    ``sample`` None measures every key (exact). ``sample=N`` attributes about
    ``SHARE_FACTOR·N`` keys read from SCAN at random cursors and measures N of them
    (MEMORY USAGE, PTTL); inspect turns that into estimates with margins. When the
    keyspace is not much larger than that, every key is scanned and only every k-th
    measured. Raises redis-py errors (wrap with ``redis_errors``).
    """
    rng = rng or random.Random()  # sampling, not security
    started = clock()
    namespaces = list(policy.namespaces.values())
    acc = _Survey(namespaces, top, examples)
    nodes = primaries(client)
    sizes = [int(n.dbsize()) for n in nodes]
    total = sum(sizes)
    used = 0
    live = 0.0
    figures = []
    for n, size in zip(nodes, sizes, strict=True):
        node_used = int(_info(n, "memory").get("used_memory", 0))
        used += node_used
        figures.append(NodeFigures(node_name(n), size, node_used))
        # SCAN skips keys that expired but are not reclaimed yet while DBSIZE counts them;
        # Redis estimates their share (INFO stats expired_stale_perc, Redis >= 6)
        stale = float(_info(n, "stats").get("expired_stale_perc", 0.0) or 0.0)
        live += size * (1 - min(max(stale, 0.0), 100.0) / 100)
    full_scan = sample is None or sample * SHARE_FACTOR >= total
    stride = 1 if sample is None else max(1, round(
        (total if full_scan else sample * SHARE_FACTOR) / max(sample, 1)))
    sampled = stride > 1 or not full_scan
    progress_total = total if full_scan else min(total, (sample or 0) * SHARE_FACTOR)
    method = "lua" if use_lua else "pipeline"
    matcher = NamespaceMatcher(namespaces)
    internal = (policy.internal_prefix + ":").encode()
    done = 0
    lock = threading.Lock()
    stop = threading.Event()

    def merge(reply: list[Any]) -> int:
        nonlocal done
        _, counters, ns_recs, shape_recs, top_recs = reply
        with lock:
            acc.merge_lua(counters, ns_recs, shape_recs, top_recs)
            done += counters[0]
            on_progress("scanning keys", min(done, progress_total), progress_total)
        return int(counters[0])

    def run_lane(script: Any, lane: int, cursor: int, count: int, budget_us: int) -> None:
        # one quarter of the cursor space: from its start until SCAN leaves it
        while not stop.is_set():
            reply = script(args=_survey_args(
                policy, namespaces, cursor=cursor, count=count, stride=1, offset=0, top=top,
                examples=examples, budget_us=budget_us, lane=lane))
            merge(reply)
            cursor = int(reply[0])
            if cursor == 0 or cursor % LANES != LANE_STARTS[lane]:
                return

    on_progress("scanning keys", 0, progress_total)
    with ThreadPoolExecutor(max_workers=LANES - 1) as pool:
        for node, size in zip(nodes, sizes, strict=True):
            if size == 0:
                continue
            quota = None if full_scan else math.ceil(
                (sample or 0) * SHARE_FACTOR * size / total)
            # the script loops SCAN until its time budget is spent (a sample also stops
            # after SAMPLE_RUN keys, so it is drawn from many random starting points);
            # rate-limited scans take one SCAN per call, sized by COUNT
            budget_us = int(BATCH_TARGET_S * 1e6) if limiter is None else 0
            count = INNER_COUNT if budget_us else 500
            # Big nodes are walked as LANES quarters of the cursor space at once, so the
            # server always has the next batch queued while the client merges the last.
            lanes = (quota is None and budget_us > 0 and stride == 1
                     and size >= PARALLEL_MIN_KEYS)
            others: list[Future[None]] = []
            cursor: int | bytes = 0 if full_scan else rng.getrandbits(31)
            node_scanned = 0
            offset = rng.randrange(stride) if stride > 1 else 0
            script = node.register_script(SURVEY_LUA)
            try:
                while True:
                    t0 = clock()
                    server_s: float | None = None
                    if method == "lua":
                        try:
                            reply = script(args=_survey_args(
                                policy, namespaces, cursor=cursor, count=count, stride=stride,
                                offset=offset, top=top, examples=examples,
                                budget_us=budget_us, lane=0 if lanes else None,
                                max_keys=0 if quota is None else min(
                                    SAMPLE_RUN, max(1, quota - node_scanned))))
                        except rex.ResponseError as exc:
                            if not _scripting_refused(exc):
                                raise
                            method = "pipeline"
                            lanes = False
                            continue
                        next_cursor = reply[0]
                        batch = merge(reply)
                        if reply[1][6] >= 0:
                            server_s = reply[1][6] / 1e6
                        if lanes and not others:
                            others = [pool.submit(run_lane, script, i, LANE_STARTS[i], count,
                                                  budget_us) for i in range(1, LANES)]
                    else:
                        next_cursor, keys = node.scan(cursor=cursor, count=count)
                        with lock:
                            acc.add_python(node, keys, stride, offset, internal, matcher)
                            done += len(keys)
                            on_progress("scanning keys", min(done, progress_total),
                                        progress_total)
                        batch = len(keys)
                    # the script times itself with TIME, so a busy client does not shrink
                    # batches; otherwise keep each call near the target by resizing COUNT
                    elapsed = server_s if server_s is not None else clock() - t0
                    if elapsed > 0 and not (budget_us and server_s is not None):
                        count = int(min(MAX_BATCH, max(MIN_BATCH, count * min(
                            2.0, max(0.5, BATCH_TARGET_S / elapsed)))))
                    node_scanned += batch
                    if limiter is not None and batch:
                        limiter.wait(batch)
                    if quota is None:
                        cursor = next_cursor
                        if int(cursor) == 0 or (lanes and int(cursor) % LANES != 0):
                            break
                    else:
                        if node_scanned >= quota:
                            break
                        cursor = rng.getrandbits(31)
            except BaseException:
                stop.set()
                raise
            finally:
                for other in others:
                    other.result()
    return acc.freeze(sampled=sampled, total_keys=total, used_memory=used,
                      nodes=tuple(figures), elapsed_s=clock() - started,
                      method=method, live_keys=live)
