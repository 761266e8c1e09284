"""The orjson fast path stores exactly the bytes the stdlib path stores, or steps aside."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachectl.warm import codec
from cachectl.warm.core import encode_value
from cachectl.warm.sources import BadRow, SourceContext, open_source

orjson = pytest.importorskip("orjson")


def stdlib_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def read_jsonl(tmp_path: Path, data: bytes, fast: bool,
               monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, Any, bytes | None]]:
    """(line, row or BadRow, the bytes a warm stores or None) for every row of ``data``."""
    (tmp_path / "rows.jsonl").write_bytes(data)
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(codec, "fast_row", None)
        source = open_source("jsonl", {"path": "rows.jsonl"},
                             SourceContext("t", tmp_path, {}))
        out = []
        for number, row, value in source.encoded_rows():  # type: ignore[attr-defined]
            stored = None
            if not isinstance(row, BadRow):
                try:
                    stored = value if value is not None else encode_value(row)
                except (TypeError, ValueError, RecursionError):
                    stored = b"<cannot be encoded>"
            out.append((number, row, stored))
        return out


def comparable(rows: list[tuple[int, Any, bytes | None]]) -> list[tuple[int, Any, bytes | None]]:
    # NaN != NaN: compare rows by their stdlib text (exact: floats repr round-trip)
    return [(n, row if isinstance(row, BadRow) else json.dumps(row), stored)
            for n, row, stored in rows]


TRICKY_LINES = [
    '{"id":1,"name":"caf\u00e9 \U0001f600 \u2028\u2029 \x7f","ctl":"\\u0000\\u001f\\b\\f\\n\\r\\t"}',
    '{"id":2,"floats":[1e-05,1.5e-07,0.0001,0.00012,1e16,1e15,1e22,-0.0,0.0,5e-324,'
    '1.7976931348623157e308,2.5,0.1,123456.789e3,9.247494342746089e-05]}',
    '{"id":3,"big":[18446744073709551615,18446744073709551616,-9223372036854775808,'
    '-9223372036854775809,123456789012345678901234567890]}',
    '{"id":4,"nan":NaN,"inf":Infinity,"ninf":-Infinity}',
    '{"id":5,"huge":1e400}',
    '{"id":6,"lone":"\\ud800"}',
    '{"id":7,"deep":' + "[" * 300 + "]" * 300 + "}",
    '{"id":8,"a":1,"a":2}',
    '{"id":9,"text":"5e-3 and 0.00001 and 1e+9 are just text","url":"https://example-shop.test"}',
    '{ "id" : 10 , "spaced" : [ 1 , 2.50 , "x" ] , "nested" : {"k": {"k": [true, false, null]}} }',
    '{"id":11,"escaped":"\\u00e9\\ud83d\\ude00\\/"}',
    "[1,2]",
    '"just a string"',
    "",
    "{not json",
    '{"id":12,"neg":-1.5e-300,"exp":1E+2,"zero":-0}',
]


def test_tricky_lines_store_the_same_bytes_with_and_without_orjson(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ("\ufeff" + "\n".join(TRICKY_LINES) + "\n").encode("utf-8")
    fast = read_jsonl(tmp_path, data, True, monkeypatch)
    slow = read_jsonl(tmp_path, data, False, monkeypatch)
    assert comparable(fast) == comparable(slow)
    # and the stored bytes are the documented json.dumps of the row
    for _, row, stored in slow:
        if not isinstance(row, BadRow) and stored != b"<cannot be encoded>":
            assert stored == stdlib_bytes(row)
    assert [n for n, row, _ in slow if isinstance(row, BadRow)] == [12, 13, 15]
    assert [n for n, _, stored in slow if stored == b"<cannot be encoded>"] == [6]


def test_plain_rows_take_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"id": n, "name": f"p\u00e9{n}", "rating": 4.5, "tags": ["a", "b"], "ok": True}
            for n in range(50)]
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    fast = read_jsonl(tmp_path, data, True, monkeypatch)
    assert [r for _, r, _ in fast] == rows
    assert all(stored == stdlib_bytes(r) for r, (_, _, stored) in zip(rows, fast, strict=True))
    # the source handed the encoded bytes over itself: the orjson path was used
    (tmp_path / "again.jsonl").write_bytes(data)
    source = open_source("jsonl", {"path": "again.jsonl"}, SourceContext("t", tmp_path, {}))
    assert all(v is not None for _, _, v in source.encoded_rows())  # type: ignore[attr-defined]


json_leaf = (st.none() | st.booleans()
             | st.integers(min_value=-(2**70), max_value=2**70)
             | st.floats(allow_nan=False, allow_infinity=False)
             | st.sampled_from([1e-05, 1e-7, 9.99e-05, 1e16, 1e17, 2.0**64, 1e300, 0.0001])
             | st.text())
json_value = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(st.text(max_size=6), kids, max_size=4),
                          max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=st.dictionaries(st.text(max_size=6), json_value, max_size=6),
       ascii_input=st.booleans())
def test_varied_rows_store_identical_bytes(row: dict[str, Any], ascii_input: bool) -> None:
    line = json.dumps(row, ensure_ascii=ascii_input).encode("utf-8", "surrogatepass")
    expected_row = json.loads(line)
    expected = None
    with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate: rejected either way
        expected = stdlib_bytes(expected_row)
    fast = codec.fast_row(line) if codec.fast_row is not None else None
    if fast is not None:
        assert fast[0] == expected_row or json.dumps(fast[0]) == json.dumps(expected_row)
        assert fast[1] == expected


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.floats(allow_nan=False, allow_infinity=False)
       | st.integers(min_value=-(2**80), max_value=2**80))
def test_the_float_guard_never_lets_a_different_number_through(value: float | int) -> None:
    text = json.dumps([value, "x"]).encode()
    fast = codec.fast_row(b'{"v":' + text + b"}") if codec.fast_row is not None else None
    if fast is not None:
        assert fast[1] == b'{"v":' + stdlib_bytes([value, "x"]) + b"}"
        assert math.isclose(fast[0]["v"][0], value) and type(fast[0]["v"][0]) is type(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.dictionaries(st.text(max_size=6), json_value, max_size=6), min_size=1,
                     max_size=4))
def test_the_bulk_float_guard_flags_every_row_the_exact_test_flags(
        rows: list[dict[str, Any]]) -> None:
    # the bulk path checks a whole chunk at once with floats_may_differ: it may flag more
    # than orjson_matches_stdlib, never less (one row, or several joined)
    datas = []
    for row in rows:
        with contextlib.suppress(TypeError):  # an int orjson cannot write: not a fast row
            datas.append(orjson.dumps(row))
    for data in datas:
        if not codec.orjson_matches_stdlib(data):
            assert codec.floats_may_differ(data)
    if not all(map(codec.orjson_matches_stdlib, datas)):
        assert codec.floats_may_differ(b"".join(datas))


@pytest.mark.parametrize("text", [b'{"v":1e-7}', b'{"v":[0.00001]}', b'{"a":"x","v":1.5e+16}',
                                  b'{"v":-2.5e-300}', b'{"v":9.99e-5}'])
def test_the_bulk_float_guard_flags_the_floats_orjson_writes_differently(text: bytes) -> None:
    data = orjson.dumps(orjson.loads(text))
    assert not codec.orjson_matches_stdlib(data) and codec.floats_may_differ(data)


def test_the_bulk_float_guard_lets_plain_rows_through() -> None:
    row = {"id": 280, "sku": "ORC-0000280", "name": "Mini T-Shirt", "rating": 3.5,
           "url": "https://example-shop.test/p/280/1.webp", "n": [1, 2.25, {"e-x": 10}]}
    assert not codec.floats_may_differ(orjson.dumps(row) * 3)


flat_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
             | st.floats() | st.sampled_from([1e-05, 1e-7, 1e16, 0.0001, -0.0, math.nan])
             | st.text() | st.sampled_from(["null", "NaN", "\ud800"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=st.dictionaries(st.text(max_size=6) | st.integers(0, 9), flat_leaf | st.lists(flat_leaf),
                           max_size=6))
def test_rows_from_python_sources_store_the_stdlib_bytes(row: dict[Any, Any]) -> None:
    # CSV/SQL/JSON/HTTP rows go through encode_row: orjson when provably identical
    def outcome(encode: Any) -> Any:
        try:
            return encode(row)
        except (TypeError, ValueError) as exc:
            return type(exc)

    assert outcome(codec.encode_row) == outcome(codec.encode_value)


def test_plain_flat_rows_are_encoded_by_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    def counting_dumps(value: Any) -> str:
        calls.append(value)
        return "{}"

    monkeypatch.setattr(codec, "dumps", counting_dumps)
    assert codec.encode_row({"id": 1, "sku": "A-1", "rating": 4.5, "ok": True}) == (
        b'{"id":1,"sku":"A-1","rating":4.5,"ok":true}')
    assert codec.encode_row({"id": 1, "note": None, "n": "x"}) == b'{"id":1,"note":null,"n":"x"}'
    assert calls == []
    codec.encode_row({"id": 1, "rating": math.nan})  # orjson would write null: the stdlib
    codec.encode_row({"tiny": 1e-7})
    assert len(calls) == 2
