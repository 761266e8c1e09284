"""Compressed values: the self-describing frame, the codecs, and a namespace's setting.

A compressed value is stored as a frame::

    0xFF 0x63 0x7A  codec id  uvarint(plain length)  payload
    \\xff  'c'  'z'    1 byte    LEB128, 1-10 bytes    the codec's own format

- 0xFF never occurs in UTF-8 text, so no JSON text (nor any UTF-8 string the library or
  warm stores) can begin with the magic; framed and plain values are told apart by the
  first three bytes alone, and every reader accepts both.
- Bytes values (warm's ``encoding: raw`` of a bytes field, a custom serializer) can begin
  with anything. The rule that keeps them unambiguous: a plain value that itself begins
  with the magic is always written framed, with codec 0 (``stored``: the payload is the
  value as is), whatever the namespace's setting. So every stored value that begins with
  the magic is a frame, and decoding any stored value gives back exactly what was written.
- Codec ids: 0 stored, 1 zlib (RFC 1950 stream), 2 zstd (a zstd frame), 3 lz4 (an LZ4
  *block*, its size taken from the frame's length field).
- The length is the plain value's, so a reader sizes its buffer and refuses a payload that
  inflates past it (no decompression bomb).

A value under the namespace's ``min_bytes``, or one the codec does not shrink, is stored
plain. Anything malformed after the magic raises ``CorruptFrameError``; the library and
inspect turn it into a miss (counted as an error), never a value.

zlib is the standard library's; zstd comes from ``zstandard`` and lz4 from ``lz4`` (the
``compress`` extra). A missing package raises ``CodecUnavailableError`` when that codec is
used (lint warns earlier, CP409).
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from cachectl.errors import UsageError, install_extra_hint

MAGIC = b"\xffcz"
STORED, ZLIB, ZSTD, LZ4 = 0, 1, 2, 3
CODEC_IDS = {"stored": STORED, "zlib": ZLIB, "zstd": ZSTD, "lz4": LZ4}
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}
# the codecs a policy may name (``stored`` is the frame's escape, never a setting)
POLICY_CODECS = ("zstd", "lz4", "zlib")
# codec -> (the package that provides it, the module to import), None: the stdlib
CODEC_PACKAGES: dict[str, tuple[str, str] | None] = {
    "zlib": None, "zstd": ("zstandard", "zstandard"), "lz4": ("lz4", "lz4.block")}
# codec -> (lowest, default, highest) level. lz4: 0 is its fast mode, 1-12 high compression
LEVELS = {"zlib": (1, 6, 9), "zstd": (1, 3, 22), "lz4": (0, 0, 12)}
DEFAULT_MIN_BYTES = 256
_MAX_VARINT = 10


class CorruptFrameError(ValueError):
    """A stored value begins with the frame's magic but is not a valid frame."""


class CodecUnavailableError(UsageError):
    """The codec's package is not installed."""


@dataclass(frozen=True)
class Compression:
    """A namespace's setting: compress values of ``min_bytes`` or more with ``codec``."""

    codec: str
    level: int
    min_bytes: int = DEFAULT_MIN_BYTES

    def __str__(self) -> str:
        return f"{self.codec}:{self.level} from {self.min_bytes} B"


@dataclass(frozen=True)
class FrameInfo:
    """What a stored value is: its codec (None: plain) and both sizes, in bytes."""

    codec: str | None
    stored_bytes: int
    plain_bytes: int


def missing_package(codec: str) -> str | None:
    """The package to install for ``codec``, or None when it is importable (or stdlib)."""
    package = CODEC_PACKAGES.get(codec)
    if package is None:
        return None
    try:
        importlib.import_module(package[1].partition(".")[0])
    except ImportError:
        return package[0]
    return None


def level_error(codec: str, level: int) -> str | None:
    """Why ``level`` is not one ``codec`` takes, or None."""
    low, _, high = LEVELS[codec]
    if low <= level <= high:
        return None
    return f"{codec} levels are {low} to {high}"


def default_level(codec: str) -> int:
    return LEVELS[codec][1]


# ---------------------------------------------------------------------- codecs


@cache
def _module(codec: str) -> Any:
    package = CODEC_PACKAGES[codec]
    assert package is not None
    try:
        return importlib.import_module(package[1])
    except ImportError:
        raise CodecUnavailableError(
            f"codec {codec} needs the {package[0]} package, which is not installed",
            hint=install_extra_hint("compress")) from None


@cache
def compressor(codec: str, level: int) -> Callable[[bytes], bytes]:
    """A function compressing bytes with ``codec`` at ``level`` (its payload, no frame)."""
    if codec == "zlib":
        return lambda data: zlib.compress(data, level)
    if codec == "zstd":
        # no checksum (Redis keeps the bytes intact); the content size is kept, so any
        # zstd decoder reads the payload alone
        zc = _module("zstd").ZstdCompressor(level=level, write_checksum=False)
        return zc.compress  # type: ignore[no-any-return]
    if codec == "lz4":
        block = _module("lz4")
        options: dict[str, Any] = (
            {} if level == 0 else {"mode": "high_compression", "compression": level})

        def lz4_compress(data: bytes) -> bytes:
            return bytes(block.compress(data, store_size=False, **options))

        return lz4_compress
    raise UsageError(f"unknown codec {codec!r}", hint=f"codecs: {', '.join(POLICY_CODECS)}")


def _inflate_zlib(payload: bytes | memoryview, size: int) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(payload, size + 1)
    if not d.eof or d.unused_data:
        raise zlib.error("truncated or trailing data")
    return out


@cache
def _decompressor(codec_id: int
                  ) -> tuple[Callable[[bytes | memoryview, int], bytes], type[Exception]]:
    """(inflate(payload, plain size), the error it raises on a bad payload)."""
    if codec_id == ZLIB:
        return _inflate_zlib, zlib.error
    if codec_id == ZSTD:
        zstandard = _module("zstd")
        zd = zstandard.ZstdDecompressor()
        return (lambda payload, size: zd.decompress(payload, max_output_size=size),
                zstandard.ZstdError)
    if codec_id == LZ4:
        block = _module("lz4")
        return (lambda payload, size: block.decompress(payload, uncompressed_size=size),
                block.LZ4BlockError)
    raise CorruptFrameError(f"unknown codec id {codec_id}")


# ---------------------------------------------------------------------- frames


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_uvarint(data: bytes, at: int) -> tuple[int, int]:
    """(value, offset after it); CorruptFrameError when the varint is cut or too long."""
    n = shift = 0
    for i in range(at, min(len(data), at + _MAX_VARINT)):
        byte = data[i]
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, i + 1
        shift += 7
    raise CorruptFrameError("the frame's length field is cut short")


def frame(codec_id: int, plain_bytes: int, payload: bytes) -> bytes:
    """The frame holding ``payload`` (``codec_id``'s compression of ``plain_bytes`` bytes)."""
    return MAGIC + bytes((codec_id,)) + _uvarint(plain_bytes) + payload


def encode(data: bytes, setting: Compression | None) -> bytes:
    """What to store for the plain value ``data`` under ``setting`` (None: compression off).

    Compressed in a frame when it is at least ``min_bytes`` and the frame is smaller;
    otherwise plain, except that a value beginning with the magic is framed as stored.
    """
    encoder = value_encoder(setting, True)
    assert encoder is not None
    return encoder(data)


def value_encoder(setting: Compression | None, any_bytes: bool
                  ) -> Callable[[bytes], bytes] | None:
    """What turns each plain value into the stored one, or None when every value is stored
    as is: no compression and values that are UTF-8 text (JSON), which never begin with the
    magic. ``any_bytes``: values may be arbitrary bytes (escaped when they begin with it).
    Raises CodecUnavailableError now, not at the first large value."""
    if setting is not None:
        compress = compressor(setting.codec, setting.level)
        codec_id, min_bytes = CODEC_IDS[setting.codec], setting.min_bytes

        def encode_compressed(data: bytes) -> bytes:
            if len(data) >= min_bytes:
                framed = frame(codec_id, len(data), compress(data))
                if len(framed) < len(data):
                    return framed
            if data[:3] == MAGIC:
                return frame(STORED, len(data), data)
            return data

        return encode_compressed
    if any_bytes:
        return lambda data: frame(STORED, len(data), data) if data[:3] == MAGIC else data
    return None


def is_frame(data: bytes) -> bool:
    return data[:3] == MAGIC


def decode(data: bytes) -> bytes:
    """The plain value of a stored one (framed or plain); CorruptFrameError for a bad frame."""
    if data[:3] != MAGIC:
        return data
    return _unframe(data)[1]


def _unframe(data: bytes) -> tuple[int, bytes]:
    if len(data) < 5:
        raise CorruptFrameError("the frame is cut short")
    codec_id = data[3]
    size = data[4]
    if size < 0x80:  # values under 128 B and under 16 KiB: one and two length bytes
        start = 5
    elif len(data) > 5 and data[5] < 0x80:
        size, start = (size & 0x7F) | data[5] << 7, 6
    else:
        size, start = _read_uvarint(data, 4)
    if codec_id == STORED:
        plain = data[start:]
    else:
        inflate, error = _decompressor(codec_id)
        try:  # a view: the payload is not copied before it is decompressed
            plain = inflate(memoryview(data)[start:], size)
        except error as exc:
            raise CorruptFrameError(
                f"{CODEC_NAMES[codec_id]} payload does not decompress: {exc}") from None
    if len(plain) != size:
        raise CorruptFrameError(
            f"the frame says {size} bytes, its payload holds {len(plain)}")
    return codec_id, plain


def inspect_frame(data: bytes) -> FrameInfo:
    """The codec and both sizes of a stored value (decompressed to check it);
    CorruptFrameError for a bad frame."""
    if data[:3] != MAGIC:
        return FrameInfo(None, len(data), len(data))
    codec_id, plain = _unframe(data)
    return FrameInfo(CODEC_NAMES[codec_id], len(data), len(plain))
