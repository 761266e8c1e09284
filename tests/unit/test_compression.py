"""The frame codec: round trips for every codec on both sides of min_bytes, the escape rule
for values that begin with the magic, and corrupt frames raising CorruptFrameError."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachectl import compression
from cachectl.compression import MAGIC, Compression, CorruptFrameError, decode, encode

CODECS = compression.POLICY_CODECS
SETTINGS = [Compression(codec, level, 64)
            for codec in CODECS for level in sorted(set(compression.LEVELS[codec]))]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=8),
    max_leaves=60)


@pytest.mark.parametrize("setting", SETTINGS, ids=str)
@given(data=st.binary(max_size=600))
@settings(max_examples=60, deadline=None)
def test_any_bytes_round_trip(setting: Compression, data: bytes) -> None:
    stored = encode(data, setting)
    assert decode(stored) == data
    info = compression.inspect_frame(stored)
    assert info.plain_bytes == len(data) and info.stored_bytes == len(stored)
    if len(data) < setting.min_bytes and not data.startswith(MAGIC):
        assert stored == data  # under min_bytes: plain
    assert len(stored) <= len(data) + 16  # never much larger: plain when it does not shrink


@pytest.mark.parametrize("codec", CODECS)
@given(value=JSON)
@settings(max_examples=60, deadline=None)
def test_json_values_round_trip_and_only_large_ones_are_framed(codec: str, value: object) -> None:
    data = json.dumps(value, ensure_ascii=False).encode()
    setting = Compression(codec, compression.default_level(codec), 128)
    stored = encode(data, setting)
    assert decode(stored) == data
    assert stored.startswith(MAGIC) == (stored != data)
    if len(data) < 128:
        assert stored == data


@pytest.mark.parametrize("codec", CODECS)
def test_compressible_value_over_min_bytes_is_framed_with_its_codec(codec: str) -> None:
    data = json.dumps([{"sku": f"SKU-{i}", "name": "a blue shirt"} for i in range(50)]).encode()
    at = Compression(codec, compression.default_level(codec), len(data))
    above = Compression(codec, compression.default_level(codec), len(data) + 1)
    framed = encode(data, at)
    assert framed.startswith(MAGIC) and len(framed) < len(data) / 3
    assert compression.inspect_frame(framed).codec == codec
    assert encode(data, above) == data  # one byte under min_bytes: plain


@given(tail=st.binary(max_size=300))
def test_a_plain_value_beginning_with_the_magic_is_escaped(tail: bytes) -> None:
    data = MAGIC + tail
    for setting in (None, *SETTINGS):
        stored = encode(data, setting)
        assert stored != data and decode(stored) == data


def test_no_json_text_or_utf8_text_begins_with_the_magic() -> None:
    with pytest.raises(UnicodeDecodeError):
        MAGIC.decode("utf-8")


def test_compression_off_stores_plain_and_reads_frames() -> None:
    data = b'{"a":"' + b"x" * 1000 + b'"}'
    assert encode(data, None) == data
    assert decode(encode(data, Compression("zstd", 3))) == data


CORRUPT = [
    MAGIC,                                   # cut before the codec
    MAGIC + b"\x02",                         # cut before the length
    MAGIC + b"\x02\xff\xff",                 # length varint cut short
    MAGIC + b"\x09\x05hello",                # unknown codec id
    MAGIC + b"\x00\x06hello",                # stored, length says 6, holds 5
    MAGIC + b"\x01\x05not zlib",
    MAGIC + b"\x02\x05not zstd",
    MAGIC + b"\x03\x05\xff\xff\xff",
]


@pytest.mark.parametrize("data", CORRUPT)
def test_corrupt_frames_raise_corrupt_frame_error(data: bytes) -> None:
    with pytest.raises(CorruptFrameError):
        decode(data)


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_or_inflated_payloads_are_corrupt(codec: str) -> None:
    data = b"0123456789abcdef" * 64
    framed = encode(data, Compression(codec, compression.default_level(codec)))
    with pytest.raises(CorruptFrameError):
        decode(framed[:-3])
    lying = framed.replace(b"\x80\x08", b"\xff\x07", 1)  # the length says 1023, not 1024
    assert lying != framed
    with pytest.raises(CorruptFrameError):
        decode(lying)


def test_a_codec_without_its_package_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    compression._module.cache_clear()
    compression.compressor.cache_clear()
    monkeypatch.setitem(sys.modules, "zstandard", None)
    try:
        assert compression.missing_package("zstd") == "zstandard"
        assert compression.missing_package("zlib") is None
        with pytest.raises(compression.CodecUnavailableError, match="zstandard"):
            encode(b"x" * 1000, Compression("zstd", 3))
    finally:
        compression._module.cache_clear()
        compression.compressor.cache_clear()


def test_warm_escapes_only_where_a_value_can_begin_with_the_magic() -> None:
    from cachectl.warm.loop import raw_value

    assert compression.value_encoder(None, any_bytes=False) is None  # JSON text: as is
    escape = compression.value_encoder(None, any_bytes=True)  # warm's encoding: raw
    assert escape is not None
    data = raw_value(MAGIC + b"\x02\x05hello")
    assert escape(data) != data and decode(escape(data)) == data
    assert escape(b"plain") == b"plain"
