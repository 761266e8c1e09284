"""The survey's server-side batch (a Lua script) and the arguments it takes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cachectl.freshness import ttl_bounds_ms
from cachectl.keyspace.matcher import lua_pattern
from cachectl.policy.model import Namespace, Policy
from cachectl.policy.template import KeyTemplate

HIST_BASE = 1.01  # TTL histogram bucket ratio: medians are within 0.5 % of the true value
# SCAN walks buckets in reverse-binary order, so the cursor's two lowest bits split the
# walk into four consecutive quarters whatever the table size: 00, 10, 01, 11
LANES = 4
LANE_STARTS = (0, 2, 1, 3)
ARG_CURSOR, ARG_MAX_KEYS, ARG_QUOTA = 0, 12, 13  # positions in survey_args()

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
#   ARGV[14] measure at most this many keys of each stratum (each namespace, the
#            unmatched keys, cachectl's own keys) in this call (0: no limit)
#   ARGV[15] D: how many leading bytes every namespace's (and the internal prefix's)
#            literal head shares; ARGV[16] the internal prefix's byte at D+1 (-1: any)
#   then 7 per namespace, in policy order: Lua pattern, grace ms, stale ms,
#   highest PTTL a write can set, max value bytes (0: unlimited), its byte at D+1
#   (-1: any), 1 when it compresses (its measured values' first bytes are read to
#   count compression frames) else 0. A key is tried only against the patterns its
#   byte D+1 allows.
# Returns {cursor, {scanned, measured, gone, denied, internal_seen, internal_mem, server µs},
#          per-namespace records, unmatched shape records, biggest keys}.
SURVEY_LUA = r"""
local call, pcall_, find, gsub, byte = redis.call, redis.pcall, string.find, string.gsub,
  string.byte
local floor, log = math.floor, math.log
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
local ipat = '^' .. gsub(internal, '%W', '%%%0')
local logb = tonumber(ARGV[8])
local budget = tonumber(ARGV[9])
local lane_mod = tonumber(ARGV[10]) + 1
local lane_val = tonumber(ARGV[11])
local next_start = ARGV[12]
local max_keys = tonumber(ARGV[13])
local quota = tonumber(ARGV[14])
local at = tonumber(ARGV[15]) + 1
local FIRST, PER = 16, 7
local pats, grace, stale, maxp, maxv, disp, cz = {}, {}, {}, {}, {}, {}, {}
local nns = (#ARGV - FIRST) / PER
for i = 1, nns do
  local b = FIRST + (i - 1) * PER
  pats[i] = ARGV[b + 1]
  grace[i] = tonumber(ARGV[b + 2])
  stale[i] = tonumber(ARGV[b + 3])
  maxp[i] = tonumber(ARGV[b + 4])
  maxv[i] = tonumber(ARGV[b + 5])
  disp[i] = tonumber(ARGV[b + 6])
  cz[i] = ARGV[b + 7] == '1'
end
-- candidates by the key's byte at D+1, in the order they are tried: cachectl's own
-- prefix (-1) first, then the namespaces in policy order
local order0 = {}
if ilen > 0 then
  pats[-1] = ipat
  disp[-1] = tonumber(ARGV[16])
  order0[1] = -1
end
for i = 1, nns do order0[#order0 + 1] = i end
local any, cand = {}, {}
for _, j in ipairs(order0) do
  if disp[j] < 0 then any[#any + 1] = j end
end
for _, j in ipairs(order0) do
  local b = disp[j]
  if b >= 0 and cand[b] == nil then
    local list = {}
    for _, x in ipairs(order0) do
      if disp[x] == b or disp[x] < 0 then list[#list + 1] = x end
    end
    cand[b] = list
  end
end
local ns = {}
local shapes, order = {}, {}
local top = {}
local scanned, measured, gone, denied, iseen, imem = 0, 0, 0, 0, 0, 0
local taken = {}  -- keys measured per stratum in this call (with a quota)
for j = 1, nns + 2 do taken[j] = 0 end
local FRAME = '\255cz'  -- a compression frame's magic (cachectl.compression.MAGIC)
local LONG = '[^:]' .. string.rep('[^:]', 40) .. '[^:]*'

-- a key's shape: every ':'-segment holding a byte outside [A-Za-z_.-], or longer than
-- 40 bytes, becomes '*' (two C-level substitutions; key_shape in Python mirrors it)
local function shape_of(k)
  local s = gsub(k, '[^:]*[^%a_%-%.:][^:]*', '*')
  if #s > 40 then s = gsub(s, LONG, '*') end
  return s
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
for n = 1, #keys do
  local k = keys[n]
  scanned = scanned + 1
  local idx = scanned
  local i = 0
  local c = cand[byte(k, at)] or any
  for x = 1, #c do
    local j = c[x]
    if find(k, pats[j]) then i = j break end
  end
  local rec
  if i > 0 then
    rec = ns[i]
    if rec == nil then
      rec = {i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, {}, {}, {}, {}, 0}
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
  local st = i > 0 and i or (i == 0 and nns + 1 or nns + 2)
  if (stride == 1 or idx % stride == offset) and (quota == 0 or taken[st] < quota) then
    taken[st] = taken[st] + 1
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
          if cz[i] and pcall_('GETRANGE', k, 0, 2) == FRAME then rec[18] = rec[18] + 1 end
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


def survey_args(policy: Policy, namespaces: Sequence[Namespace], *, cursor: int | bytes,
                 count: int, stride: int, offset: int, top: int, examples: int,
                 budget_us: int, lane: int | None = None, max_keys: int = 0,
                 quota: int = 0) -> list[Any]:
    internal = policy.internal_prefix + ":"
    args: list[Any] = [cursor, count, stride, offset, top, examples, internal,
                       repr(math.log(HIST_BASE)), budget_us]
    if lane is None:
        args += [0, 0, 0]
    else:
        args += [LANES - 1, LANE_STARTS[lane], LANE_STARTS[(lane + 1) % LANES]]
    heads = [literal_head(ns.template) for ns in namespaces]
    shared = _shared_length([*heads, internal.encode()])
    assert len(args) == ARG_MAX_KEYS
    args += [max_keys, quota, shared, _byte_at(internal.encode(), shared)]
    for ns, head in zip(namespaces, heads, strict=True):
        args += [lua_pattern(ns.template), ns.grace_ms, ns.stale_ms, ttl_bounds_ms(ns)[1],
                 ns.max_value_bytes or 0, _byte_at(head, shared),
                 1 if ns.compress is not None else 0]
    return args


def literal_head(template: KeyTemplate) -> bytes:
    """The literal text every key of ``template`` starts with (up to its first placeholder)."""
    parts = []
    for seg in template.segments:
        parts.append(seg.prefix)
        if seg.placeholder is not None:
            break
    return ":".join(parts).encode()


def _shared_length(heads: list[bytes]) -> int:
    n = min(map(len, heads), default=0)
    for i in range(n):
        if len({h[i] for h in heads}) > 1:
            return i
    return n


def _byte_at(head: bytes, pos: int) -> int:
    return head[pos] if pos < len(head) else -1
