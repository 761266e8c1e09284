"""Access traces: read CSV, JSON lines and libCacheSim's oracleGeneral into one columnar ``Trace``.

Formats (``.gz`` and ``.zst`` are decompressed transparently):

- CSV with a header ``time,key,size`` and an optional ``namespace`` column; time in seconds
  (float allowed), size in bytes.
- JSON lines with the same fields, one object per line.
- libCacheSim's ``oracleGeneral`` binary (any other suffix): little-endian records of u32 time,
  u64 object id, u32 size, i64 next access (ignored). Ids are keys without text, so a file of
  them needs ``--namespace``.

Every record gets a 64-bit key hash (``key_hash``: the id itself for oracleGeneral, the first 8
bytes of BLAKE2b of the key otherwise) and a namespace; a record that makes no sense (time going
backwards, a negative size, a truncated record, a namespace the policy does not have) raises
``TraceError`` naming the file and the record number.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from cachectl.errors import SourceError, install_extra_hint
from cachectl.files import check_regular

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from cachectl.policy.model import Policy

ORACLE_RECORD = "<IQIq"  # u32 time, u64 id, u32 size, i64 next access
ORACLE_RECORD_BYTES = 24
TEXT_SUFFIXES = (".csv", ".jsonl", ".ndjson")
_CHUNK_RECORDS = 1 << 18


class TraceError(SourceError):
    """A trace file cannot be read, or one of its records makes no sense (exit 2)."""


def key_hash(key: bytes) -> int:
    """The 64-bit hash a trace and the library's capture give a key: BLAKE2b, 8 bytes, little-endian."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


@dataclass
class Trace:
    """Accesses in time order, one column per field; ``namespaces[ns[i]]`` names record i's namespace."""

    time_s: npt.NDArray[np.float64]
    key_hash: npt.NDArray[np.uint64]
    size: npt.NDArray[np.int64]
    ns: npt.NDArray[np.int32]
    namespaces: tuple[str, ...]
    # the key text of hashes whose text the trace had (for hot keys); filled for sampled keys only
    keys: dict[int, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    # the rate the trace was captured at (the library's trace: section); 1: every access
    sample_rate: float = 1.0

    def __len__(self) -> int:
        return int(self.time_s.shape[0])


class _Columns:
    """Growing columns for one file, with the record-level checks."""

    def __init__(self, path: Path, policy: Policy, namespace: str | None,
                 keep_key: Callable[[int], bool]) -> None:
        from cachectl.keyspace import NamespaceMatcher

        self.path = path
        self.policy = policy
        self.namespace = namespace
        self.keep_key = keep_key
        self.names = list(policy.namespaces)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.matcher = NamespaceMatcher.from_policy(policy)
        self.prefix = (policy.key_prefix + ":").encode() if policy.key_prefix else b""
        self.ns_of_key: dict[bytes, int] = {}
        self.time: list[float] = []
        self.hashes: list[int] = []
        self.size: list[int] = []
        self.ns: list[int] = []
        self.keys: dict[int, str] = {}
        self.last_time = float("-inf")

    def fail(self, record: int, message: str, hint: str | None = None) -> TraceError:
        return TraceError(f"{self.path}: record {record}: {message}", hint=hint)

    def namespace_index(self, record: int, key: bytes, named: str | None) -> int:
        name = self.namespace or named
        if name:
            if name not in self.index:
                raise self.fail(record, f"unknown namespace {name!r}",
                                hint="the policy's namespaces: " + ", ".join(self.names))
            return self.index[name]
        found = self.ns_of_key.get(key)
        if found is None:
            ns = self.matcher.namespace_of(key)
            if ns is None and self.prefix and not key.startswith(self.prefix):
                ns = self.matcher.namespace_of(self.prefix + key)
            if ns is None:
                raise self.fail(record, f"key {key.decode('utf-8', 'backslashreplace')!r} matches no "
                                "namespace of the policy",
                                hint="give the trace a namespace column, or --namespace NS for all of it")
            found = self.ns_of_key[key] = self.index[ns.name]
        return found

    def add(self, record: int, time: Any, key: Any, size: Any, namespace: Any = None) -> None:
        try:
            t = float(time)
        except (TypeError, ValueError):
            raise self.fail(record, f"time {time!r} is not a number of seconds") from None
        if t != t or t in (float("inf"), float("-inf")):
            raise self.fail(record, f"time {time!r} is not a number of seconds")
        if t < self.last_time:
            raise self.fail(record, f"time goes backwards ({t:g} s after {self.last_time:g} s)",
                            hint="sort the trace by time")
        try:
            n = int(size)
        except (TypeError, ValueError):
            raise self.fail(record, f"size {size!r} is not a number of bytes") from None
        if n < 0:
            raise self.fail(record, f"negative size {n}")
        if key is None or key == "":
            raise self.fail(record, "no key")
        raw = str(key).encode()
        ns = self.namespace_index(record, raw, str(namespace) if namespace not in (None, "") else None)
        h = key_hash(raw)
        if h not in self.keys and self.keep_key(h):
            self.keys[h] = raw.decode("utf-8", "backslashreplace")
        self.last_time = t
        self.time.append(t)
        self.hashes.append(h)
        self.size.append(n)
        self.ns.append(ns)

    def arrays(self) -> tuple[Any, Any, Any, Any]:
        import numpy as np

        return (np.asarray(self.time, dtype=np.float64), np.asarray(self.hashes, dtype=np.uint64),
                np.asarray(self.size, dtype=np.int64), np.asarray(self.ns, dtype=np.int32))


def _open_binary(path: Path) -> IO[bytes]:
    try:
        check_regular(path)  # a FIFO or a device would block or never end
        if path.suffix == ".gz":
            return cast(IO[bytes], gzip.open(path, "rb"))
        raw: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise TraceError(f"cannot open trace {path}: {exc.strerror or exc}") from None
    if path.suffix == ".zst":
        try:
            import zstandard
        except ModuleNotFoundError:
            raw.close()
            raise TraceError(f"{path}: reading .zst needs the zstandard package",
                             hint=install_extra_hint("model")) from None
        return io.BufferedReader(_ZstdStream(raw, zstandard), buffer_size=1 << 20)
    return raw


class _ZstdStream(io.RawIOBase):
    """A .zst file's frames decompressed in turn. Unlike zstandard's stream_reader, a file cut
    short mid-frame is an EOFError (not a quiet end of the trace) and corrupt data an OSError."""

    def __init__(self, raw: IO[bytes], zstandard: Any) -> None:
        self.raw = raw
        self.zstandard = zstandard
        self.context = zstandard.ZstdDecompressor()
        self.frame = self.context.decompressobj()
        self.started = False
        self.pending = b""

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            data = self.raw.read(1 << 20)
            if not data:
                if self.started and not self.frame.eof:
                    raise EOFError("the file ends inside a zstd frame (cut short?)")
                return 0
            self.started = True
            self.pending = self._decompress(data)
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def _decompress(self, data: bytes) -> bytes:
        parts = []
        try:
            while data:
                if self.frame.eof:  # a file may hold several frames
                    self.frame = self.context.decompressobj()
                parts.append(self.frame.decompress(data))
                data = self.frame.unused_data if self.frame.eof else b""
        except self.zstandard.ZstdError as exc:
            raise OSError(f"not zstd data, or corrupt: {exc}") from None
        return b"".join(parts)


def _base_suffix(path: Path) -> str:
    return Path(path.stem).suffix if path.suffix in (".gz", ".zst") else path.suffix


def _text_rows(path: Path, text: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    if _base_suffix(path) == ".csv":
        reader = csv.DictReader(text)
        missing = {"time", "key", "size"} - set(reader.fieldnames or ())
        if missing:
            raise TraceError(f"{path}: the CSV header lacks {', '.join(sorted(missing))}",
                             hint="the header is time,key,size[,namespace]")
        for record, row in enumerate(reader, start=1):
            yield record, row
        return
    for record, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}: record {record}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise TraceError(f"{path}: record {record}: not a JSON object")
        yield record, row


def _read_text(path: Path, cols: _Columns, on_progress: Callable[[int], None]) -> None:
    try:
        with _open_binary(path) as stream, io.TextIOWrapper(stream, encoding="utf-8", newline="") as text:
            for record, row in _text_rows(path, text):
                cols.add(record, row.get("time"), row.get("key"), row.get("size"), row.get("namespace"))
                if record % 65536 == 0:
                    on_progress(record)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None


def _read_oracle(path: Path, cols: _Columns, on_progress: Callable[[int], None]) -> tuple[Any, ...]:
    import numpy as np

    if cols.namespace is None and len(cols.names) != 1:
        raise TraceError(f"{path}: an oracleGeneral trace holds ids, not keys, so it names no namespace",
                         hint="pass --namespace NS for it")
    ns_index = cols.index[cols.namespace or cols.names[0]]
    dtype = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    # columns per chunk (16 bytes an event, not 24), each list freed once joined: at 5M events
    # the peak is the finished columns plus one list, not twice the trace
    time_parts: list[Any] = []
    id_parts: list[Any] = []
    size_parts: list[Any] = []
    done = 0
    try:
        with _open_binary(path) as stream:
            while True:
                chunk = stream.read(_CHUNK_RECORDS * ORACLE_RECORD_BYTES)
                if not chunk:
                    break
                whole = len(chunk) - len(chunk) % ORACLE_RECORD_BYTES
                if whole != len(chunk):
                    more = stream.read(ORACLE_RECORD_BYTES - len(chunk) % ORACLE_RECORD_BYTES)
                    chunk += more
                    if len(chunk) % ORACLE_RECORD_BYTES:
                        raise TraceError(
                            f"{path}: record {done + len(chunk) // ORACLE_RECORD_BYTES + 1}: truncated "
                            f"({len(chunk) % ORACLE_RECORD_BYTES} of {ORACLE_RECORD_BYTES} bytes)",
                            hint="the file was cut short; oracleGeneral records are 24 bytes")
                records = np.frombuffer(chunk, dtype=dtype)
                time_parts.append(records["time"].copy())
                id_parts.append(records["id"].copy())
                size_parts.append(records["size"].copy())
                done += len(chunk) // ORACLE_RECORD_BYTES
                on_progress(done)
    except (OSError, EOFError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None
    def joined(parts: list[Any], dtype: Any) -> Any:
        column = np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
        parts.clear()
        return column

    times = joined(time_parts, np.float64)
    back = np.flatnonzero(np.diff(times) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise TraceError(f"{path}: record {i + 1}: time goes backwards ({times[i]:g} s after "
                         f"{times[i - 1]:g} s)", hint="sort the trace by time")
    if times.size and times[0] < cols.last_time:
        raise TraceError(f"{path}: record 1: time goes backwards from the previous file",
                         hint="give the files in time order")
    ids = joined(id_parts, np.uint64)
    sizes = joined(size_parts, np.int64)
    return times, ids, sizes, np.full(times.shape, ns_index, dtype=np.int32)


def read_traces(paths: Sequence[Path], policy: Policy, *, namespace: str | None = None,
                keep_key: Callable[[int], bool] = lambda h: False,
                on_progress: Callable[[str, int], None] = lambda task, done: None) -> Trace:
    """Read trace files into one ``Trace`` (files are concatenated; each must be in time order).

    ``keep_key(hash)`` decides which keys' text is kept (for hot keys). Raises TraceError.
    """
    import numpy as np

    if namespace is not None and namespace not in policy.namespaces:
        raise TraceError(f"unknown namespace {namespace!r}",
                         hint="the policy's namespaces: " + ", ".join(policy.namespaces))
    columns: list[tuple[Any, ...]] = []
    keys: dict[int, str] = {}
    last = float("-inf")
    for path in paths:
        cols = _Columns(path, policy, namespace, keep_key)
        cols.last_time = last
        def progress(done: int, _p: Path = path) -> None:
            on_progress(f"reading {_p.name}", done)
        if _base_suffix(path) in TEXT_SUFFIXES:
            _read_text(path, cols, progress)
            got = cols.arrays()
        else:
            got = _read_oracle(path, cols, progress)
        if len(got[0]):
            last = float(got[0][-1])
        columns.append(got)
        keys.update(cols.keys)
    if not columns:
        raise TraceError("no trace given", hint="--trace FILE (repeatable)")
    if len(columns) == 1:  # one file: its columns as they are (a join would copy them)
        time_s, hashes, size, ns = columns.pop()
    else:
        time_s, hashes, size, ns = (np.concatenate([c[i] for c in columns]) for i in range(4))
    return Trace(time_s=time_s, key_hash=hashes, size=size, ns=ns,
                 namespaces=tuple(policy.namespaces), keys=keys,
                 sources=tuple(str(p) for p in paths))
