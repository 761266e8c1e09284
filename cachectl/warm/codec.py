"""The JSON a warm stores, and the optional orjson fast path for rows parsed from JSON text.

The stored value is always the bytes of
``json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=...)`` encoded as
UTF-8 (``encode_value``). When orjson is installed (the ``fast`` extra), rows read from
JSON text (jsonl) are parsed and re-encoded with it (``fast_row``), which is several
times quicker, and only kept when the bytes are provably those the stdlib would write:

- orjson never escapes non-ASCII and escapes control characters as the stdlib does;
- floats print the same digits (both shortest round-trip) but orjson writes
  ``1e-7``/``0.00001`` where Python writes ``1e-07``/``1e-05``: any row whose orjson
  bytes hold ``e+``, ``.0000`` or a digit followed by ``e-`` is redone with the stdlib
  (a string holding such text only costs the slow path, never a difference);
- orjson parses an integer beyond 64 bits as a float (Python keeps the exact int):
  such a float is >= 1.8e19 and prints ``e+`` -> redone with the stdlib;
- orjson rejects NaN/Infinity, 1e400, unpaired surrogates, a BOM, over-deep nesting:
  any orjson error -> the stdlib path, which accepts or rejects the line exactly as before.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable
from typing import Any

try:  # the `fast` extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the no-orjson test via monkeypatch
    _orjson = None  # type: ignore[assignment]

HAVE_ORJSON = _orjson is not None


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"a {type(value).__name__} cannot be stored as JSON")


# ensure_ascii off: the stored payload is the row as plain UTF-8 JSON, as the library stores it
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_encoder is not None:
    # JSONEncoder.encode builds this C encoder again on every call; build it once
    # no circular-reference markers (rows from a source are trees; RecursionError is caught)
    _iterencode = _c_encoder(None, _json_default, json.encoder.encode_basestring, None, ":", ",",
                             False, False, True)

    def dumps(value: Any) -> str:
        """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=…)``."""
        if value.__class__ is str:
            return _ENCODER.encode(value)
        return "".join(_iterencode(value, 0))
else:  # pragma: no cover - CPython always has the C encoder
    def dumps(value: Any) -> str:
        """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=…)``."""
        return _ENCODER.encode(value)


def encode_value(value: Any) -> bytes:
    """The compact JSON a warm stores for a row (or a field of it): the stdlib's bytes."""
    return dumps(value).encode("utf-8")


FLAT_TYPES = frozenset({str, int, float, bool, type(None)})
NO_FLOAT = frozenset({str, int, bool, type(None)})
NO_NONE = frozenset({str, int, float, bool})


def encode_row(row: dict[str, Any]) -> bytes:
    """``encode_value(row)`` for a row read from a source that gives Python values (CSV, SQL,
    JSON, HTTP): with orjson, a flat row of plain values is encoded by it when its bytes are
    provably the stdlib's (``fast_row``'s rules, plus: orjson writes NaN and Infinity as
    ``null``, so a row with a float and a None, or a float and ``null`` in the bytes, is left
    to the stdlib); anything else (a nested value, a Decimal, a date, an int beyond 64 bits,
    an unpaired surrogate, a non-str key) takes the stdlib path and its errors."""
    if _orjson is not None:
        kinds = set(map(type, row.values()))
        if kinds <= FLAT_TYPES:
            try:
                data = _orjson.dumps(row)
            except TypeError:  # orjson.JSONEncodeError is one
                pass
            else:
                if kinds <= NO_FLOAT or (kinds <= NO_NONE and b"null" not in data
                                          and orjson_matches_stdlib(data)):
                    return data
    return dumps(row).encode("utf-8")


# digits -> 0 and + -> -: an exponent (``1e-7``, ``1.5e+29``) then always reads ``0e-``
_EXPONENT_VIEW = bytes.maketrans(b"123456789+", b"000000000-")


def orjson_matches_stdlib(data: bytes) -> bool:
    """False when ``data`` (orjson output) may hold a float the stdlib writes differently:
    an exponent (a digit, then ``e+``/``e-``) or a float under 1e-4 (``.0000``)."""
    return not (b".0000" in data or b"0e-" in data.translate(_EXPONENT_VIEW))


# 1-9 -> 1, + -> -, } and ] -> ","; every other byte but digits, '.', 'e' and ',' deleted
_GUARD_TABLE = bytes.maketrans(b"23456789+}]", b"11111111-,,")
_GUARD_DELETE = bytes(c for c in range(256) if c not in b"0123456789.e+-,}]")
_ZERO_IS_ONE = bytes.maketrans(b"0", b"1")


def floats_may_differ(data: bytes) -> bool:
    """True when orjson output ``data`` (one row's bytes, or several rows' joined) may hold a
    float the stdlib writes differently; never False where ``orjson_matches_stdlib`` is.

    Deleting the bytes no number is made of keeps every ``.0000`` and every digit-``e``-sign
    run of ``data`` intact; the commas kept (and closing brackets, made commas) end every
    value, so a digit that ends one is not brought next to an ``e-`` of the next (false
    alarms only cost the row-by-row path, never a wrong byte). The searches then scan a
    fifth of the bytes: about half the cost of the exact test.
    """
    kept = data.translate(_GUARD_TABLE, _GUARD_DELETE)
    return b".0000" in kept or b"1e-" in kept.translate(_ZERO_IS_ONE)


def _make_fast_row() -> Callable[[bytes], tuple[Any, bytes] | None] | None:
    if _orjson is None:
        return None
    loads, dumps_b, error = _orjson.loads, _orjson.dumps, _orjson.JSONDecodeError
    encode_error, view = _orjson.JSONEncodeError, _EXPONENT_VIEW

    def fast_row(line: bytes) -> tuple[Any, bytes] | None:
        """(object, its stored bytes) parsed by orjson, or None: use the stdlib for this line.

        The jsonl reader inlines this body (a call per row is measurable)."""
        try:
            row = loads(line)
            data = dumps_b(row)
        except (error, encode_error):
            return None
        if b".0000" in data or b"0e-" in data.translate(view):
            return None
        return row, data

    return fast_row


fast_row = _make_fast_row()
ORJSON_LOADS = _orjson.loads if _orjson is not None else None
ORJSON_DUMPS = _orjson.dumps if _orjson is not None else None
ORJSON_ERRORS: tuple[type[Exception], ...] = (
    (_orjson.JSONDecodeError, _orjson.JSONEncodeError) if _orjson is not None else ())
EXPONENT_VIEW = _EXPONENT_VIEW
