"""What compressing each namespace's values would save, and cost, before it is turned on.

``estimate_compression`` draws a uniform sample of each namespace's string keys (a
reservoir over a full SCAN of its pattern, so every part of the keyspace is as likely to
be drawn: the same spread ``inspect --sample`` aims at, with SCAN TYPE string and no value
read until the sample is drawn), reads the sampled values, and for every candidate codec
and level computes what each value would be stored as (``compression.encode``, the very
function warm and the library write with). Memory is Redis's, not the values' bytes: a
string value takes its allocation, rounded to jemalloc's size classes
(``string_value_bytes``), which is what ``MEMORY USAGE`` reports; a value that shrinks by a
few bytes may save nothing. Savings are scaled to the namespace's key count, with a 95 %
margin from the sample's spread (zero when every key was read).

CPU cost is measured here, on this machine: the time to compress, and to decompress, the
sampled values of ``min_bytes`` or more, per value, in microseconds.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cachectl import compression
from cachectl.compression import Compression
from cachectl.connection import ConnectionSettings, redis_errors
from cachectl.errors import UsageError
from cachectl.keyspace import NamespaceMatcher, scan_keys
from cachectl.pacing import RateLimiter
from cachectl.policy.model import Namespace, Policy
from cachectl.progress import ProgressCallback, no_progress

DEFAULT_SAMPLE = 1000  # values read per namespace
# (codec, level) pairs judged: zstd's fast, default and strong levels; lz4's fast and high
# compression modes; zlib's default
CANDIDATES: tuple[tuple[str, int], ...] = (
    ("zstd", 1), ("zstd", 3), ("zstd", 9), ("lz4", 0), ("lz4", 9), ("zlib", 6))
MIN_BYTES_STEPS = (0, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
KEEP_SAVING = 0.95  # min_bytes: the largest step that keeps this share of the best saving
NEAR_BEST = 0.90  # codecs saving this share of the best one compete on decompression CPU
WORTH_IT = 0.10  # recommend compressing a namespace that saves this share of its values' memory
Z95 = 1.96
EMBSTR_MAX = 44  # Redis stores a string this short in one allocation with its object
OBJECT_BYTES = 16  # sizeof(robj)
GET_BATCH = 200


def _jemalloc_size_class(n: int) -> int:
    """The usable size jemalloc gives a request of ``n`` bytes (16-byte steps to 128, then
    four classes per doubling)."""
    if n <= 8:
        return 8
    if n <= 128:
        return (n + 15) // 16 * 16
    spacing = 1 << ((n - 1).bit_length() - 3)
    return (n + spacing - 1) // spacing * spacing


def string_value_bytes(n: int) -> int:
    """The memory Redis (jemalloc) spends on a string value of ``n`` bytes, as ``MEMORY
    USAGE`` counts it: object and sds header in one allocation up to 44 bytes (embstr),
    else the object plus the sds (header 3, 5 or 9 bytes, the bytes, a NUL)."""
    if n <= EMBSTR_MAX:
        return _jemalloc_size_class(OBJECT_BYTES + 3 + n + 1)
    header = 3 if n < 1 << 8 else 5 if n < 1 << 16 else 9
    return OBJECT_BYTES + _jemalloc_size_class(header + n + 1)


@dataclass(frozen=True)
class CandidateEstimate:
    """One codec and level on one namespace, at the min_bytes that suits it."""

    codec: str
    level: int
    min_bytes: int
    ratio: float  # plain bytes / stored bytes of the sampled values it would compress
    compressed_share: float  # of the values, those it would store framed
    saved_bytes: int  # memory the namespace would save, estimated for all its keys
    saved_margin_bytes: int  # 95 % margin of saved_bytes
    saved_share: float  # saved_bytes / the namespace's value memory now
    compress_us: float  # per compressed value, measured here
    decompress_us: float

    @property
    def setting(self) -> Compression:
        return Compression(self.codec, self.level, self.min_bytes)

    def to_json(self) -> dict[str, Any]:
        return {"codec": self.codec, "level": self.level, "min_bytes": self.min_bytes,
                "ratio": round(self.ratio, 3), "compressed_share": round(self.compressed_share, 4),
                "saved_bytes": self.saved_bytes, "saved_margin_bytes": self.saved_margin_bytes,
                "saved_share": round(self.saved_share, 4),
                "compress_us": round(self.compress_us, 2),
                "decompress_us": round(self.decompress_us, 2)}


@dataclass(frozen=True)
class NamespaceCompression:
    """What each candidate would do to one namespace, and the one recommended."""

    namespace: str
    keys: int  # string keys found by the SCAN
    sampled: int  # values read
    framed_now: int  # of those, already stored as frames
    value_memory_bytes: int  # estimated memory of all its values as stored now
    plain_value_bytes: int  # estimated plain bytes of all its values
    current: str | None  # the policy's setting, e.g. "zstd:3 from 256 B"
    candidates: tuple[CandidateEstimate, ...]
    recommended: CandidateEstimate | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "keys": self.keys, "sampled": self.sampled,
                "framed_now": self.framed_now, "value_memory_bytes": self.value_memory_bytes,
                "plain_value_bytes": self.plain_value_bytes, "current": self.current,
                "candidates": [c.to_json() for c in self.candidates],
                "recommended": self.recommended.to_json() if self.recommended else None,
                "reason": self.reason}


@dataclass(frozen=True)
class CompressionReport:
    sample: int
    namespaces: tuple[NamespaceCompression, ...]
    elapsed_s: float

    def to_json(self) -> dict[str, Any]:
        return {"sample_per_namespace": self.sample, "elapsed_s": round(self.elapsed_s, 3),
                "namespaces": [n.to_json() for n in self.namespaces]}


def estimate_compression(
    client: Any,
    policy: Policy,
    settings: ConnectionSettings,
    *,
    sample: int = DEFAULT_SAMPLE,
    namespaces: Sequence[str] | None = None,
    candidates: Iterable[tuple[str, int]] = CANDIDATES,
    limiter: RateLimiter | None = None,
    rng: random.Random | None = None,
    on_progress: ProgressCallback = no_progress,
) -> CompressionReport:
    """Sample up to ``sample`` values of each namespace and judge every installed candidate.

    Read-only: SCAN, then GET of the sampled keys. Candidates whose package is not
    installed are left out. Raises RedisUnavailableError when Redis cannot be used.
    """
    started = time.monotonic()
    chosen = [policy.namespace(n) for n in namespaces] if namespaces else list(policy)
    usable = [(c, lv) for c, lv in candidates if compression.missing_package(c) is None]
    rng = rng or random.Random()
    with redis_errors(settings):
        samples = _draw(client, policy, chosen, sample, limiter, rng, on_progress)
        values = {name: _read(drawn) for name, (_, drawn) in samples.items()}
    out: list[NamespaceCompression] = []
    for ns in chosen:
        keys, _ = samples[ns.name]
        on_progress("compressing samples", len(out), len(chosen))
        out.append(_judge(ns, keys, values[ns.name], usable))
    return CompressionReport(sample, tuple(out), time.monotonic() - started)


def _draw(client: Any, policy: Policy, chosen: list[Namespace], sample: int,
          limiter: RateLimiter | None, rng: random.Random, on_progress: ProgressCallback,
          ) -> dict[str, tuple[int, list[tuple[Any, bytes]]]]:
    """Per namespace: (string keys seen, a uniform reservoir sample of (node, key))."""
    matcher = NamespaceMatcher.from_policy(policy)
    out: dict[str, tuple[int, list[tuple[Any, bytes]]]] = {}
    for ns in chosen:
        seen: set[bytes] = set()  # SCAN may return a key twice while the table rehashes
        drawn: list[tuple[Any, bytes]] = []
        for node, keys in scan_keys(client, ns.template.glob, limiter=limiter,
                                    scan_type="string"):
            for key in keys:
                if key in seen or matcher.namespace_of(key) is not ns:
                    continue
                seen.add(key)
                if len(drawn) < sample:
                    drawn.append((node, key))
                else:
                    slot = rng.randrange(len(seen))
                    if slot < sample:
                        drawn[slot] = (node, key)
            on_progress(f"sampling {ns.name}", len(seen), None)
        out[ns.name] = (len(seen), drawn)
    return out


def _read(drawn: list[tuple[Any, bytes]]) -> list[bytes]:
    """The sampled values as stored (keys gone or no longer strings are skipped)."""
    by_node: dict[int, tuple[Any, list[bytes]]] = {}
    for node, key in drawn:
        by_node.setdefault(id(node), (node, []))[1].append(key)
    values: list[bytes] = []
    for node, keys in by_node.values():
        for start in range(0, len(keys), GET_BATCH):
            pipe = node.pipeline(transaction=False)
            for key in keys[start:start + GET_BATCH]:
                pipe.get(key)
            values.extend(bytes(v) for v in pipe.execute(raise_on_error=False)
                          if isinstance(v, bytes | bytearray))
    return values


def _judge(ns: Namespace, keys: int, stored: list[bytes],
           candidates: list[tuple[str, int]]) -> NamespaceCompression:
    current = str(ns.compress) if ns.compress is not None else None
    plains: list[bytes] = []
    now: list[int] = []
    framed = 0
    for value in stored:
        try:
            plain = compression.decode(value)
        except compression.CorruptFrameError:
            continue  # a reader treats it as a miss: it is not worth judging
        framed += plain is not value
        plains.append(plain)
        now.append(string_value_bytes(len(value)))
    n = len(plains)
    scale = keys / n if n else 0.0
    memory_now = round(sum(now) * scale)
    estimates = [_candidate(codec, level, plains, now, keys, memory_now)
                 for codec, level in candidates] if n else []
    best, reason = _recommend(estimates, memory_now)
    return NamespaceCompression(
        namespace=ns.name, keys=keys, sampled=n, framed_now=framed,
        value_memory_bytes=memory_now, plain_value_bytes=round(sum(map(len, plains)) * scale),
        current=current, candidates=tuple(estimates), recommended=best, reason=reason)


def _candidate(codec: str, level: int, plains: list[bytes], now: list[int], keys: int,
               memory_now: int) -> CandidateEstimate:
    compress = compression.compressor(codec, level)
    codec_id = compression.CODEC_IDS[codec]
    # the stored size at min_bytes 0 (plain when the frame is not smaller), per value
    frames = [compression.frame(codec_id, len(p), compress(p)) for p in plains]
    sizes = [len(f) if len(f) < len(p) else len(p) for p, f in zip(plains, frames, strict=True)]
    # memory saved per value, were it compressed, against the value as stored now
    saved = [was - string_value_bytes(size) for was, size in zip(now, sizes, strict=True)]
    min_bytes = _min_bytes([len(p) for p in plains], saved)
    chosen = {i for i, p in enumerate(plains) if len(p) >= min_bytes and sizes[i] < len(p)}
    per_key = [saved[i] if i in chosen else now[i] - string_value_bytes(len(plains[i]))
               for i in range(len(plains))]
    total, margin = _scaled(per_key, keys)
    # CPU, timed on the values it would compress (each loop alone: no size bookkeeping)
    inputs = [plains[i] for i in sorted(chosen)]
    started = time.perf_counter()
    for data in inputs:
        compress(data)
    compress_s = time.perf_counter() - started
    outputs = [frames[i] for i in sorted(chosen)]
    started = time.perf_counter()
    for data in outputs:
        compression.decode(data)
    decompress_s = time.perf_counter() - started
    count = len(chosen)
    plain_sum = sum(len(plains[i]) for i in chosen)
    stored_sum = sum(sizes[i] for i in chosen)
    return CandidateEstimate(
        codec=codec, level=level, min_bytes=min_bytes,
        ratio=plain_sum / stored_sum if stored_sum else 1.0,
        compressed_share=count / len(plains),
        saved_bytes=total, saved_margin_bytes=margin,
        saved_share=total / memory_now if memory_now else 0.0,
        compress_us=compress_s / count * 1e6 if count else 0.0,
        decompress_us=decompress_s / count * 1e6 if count else 0.0)


def _min_bytes(lengths: list[int], saved: list[int]) -> int:
    """The largest step whose values (those at least that long) keep KEEP_SAVING of the
    saving of compressing every value that shrinks."""
    best = sum(s for s in saved if s > 0)
    chosen = 0
    for step in MIN_BYTES_STEPS:
        kept = sum(s for n, s in zip(lengths, saved, strict=True) if n >= step and s > 0)
        if best > 0 and kept >= KEEP_SAVING * best:
            chosen = step
    return max(chosen, 1)


def _scaled(per_key: list[int], keys: int) -> tuple[int, int]:
    """(the sample's total scaled to ``keys``, its 95 % margin with the finite-population
    correction: zero when every key was read)."""
    n = len(per_key)
    mean = sum(per_key) / n
    if n < 2 or n >= keys:
        return round(mean * keys), 0
    var = sum((x - mean) ** 2 for x in per_key) / (n - 1)
    margin = Z95 * keys * math.sqrt(var / n) * math.sqrt((keys - n) / (keys - 1))
    return round(mean * keys), round(margin)


def _recommend(estimates: list[CandidateEstimate], memory_now: int
               ) -> tuple[CandidateEstimate | None, str]:
    """The candidate to use, and why: of those saving at least NEAR_BEST of the best
    saving, the one spending least CPU (compress + decompress, per value); none when the
    best saves under WORTH_IT of the values' memory."""
    if not estimates:
        return None, "no values to sample"
    top = max(estimates, key=lambda e: e.saved_bytes)
    if memory_now <= 0 or top.saved_bytes < WORTH_IT * memory_now:
        return None, (f"saves at most {top.saved_share:.0%} of the values' memory "
                      f"(under {WORTH_IT:.0%}): leave it plain")
    near = [e for e in estimates if e.saved_bytes >= NEAR_BEST * top.saved_bytes]
    pick = min(near, key=lambda e: (e.compress_us + e.decompress_us, -e.saved_bytes))
    return pick, (f"the least CPU of the candidates within {1 - NEAR_BEST:.0%} of the best "
                  "saving")


def ratios_from_report(doc: Any) -> tuple[tuple[str, float, int], ...]:
    """(namespace, plain/stored ratio, min_bytes) of every namespace an ``inspect
    --compression --json`` document recommends compressing; UsageError when ``doc`` is not
    such a document."""
    try:
        found = []
        for ns in doc["namespaces"]:
            best = ns["recommended"]
            if best is not None:
                found.append((str(ns["namespace"]), float(best["ratio"]), int(best["min_bytes"])))
    except (KeyError, TypeError, ValueError):
        raise UsageError("not the JSON of `cachectl inspect --compression --json`",
                         hint="cachectl inspect --compression --json > compression.json") from None
    return tuple(found)
