"""Durations, sizes and ratios as the policy writes them.

Durations: ``500ms``, ``30s``, ``5m``, ``1h``, ``1d`` (decimals allowed: ``1.5h``),
or an integer of seconds; parsed to integer milliseconds. Sizes: ``512B``,
``64KiB``, ``1MiB``, ``1GiB`` (``KB``/``MB``/``GB`` are decimal), or an integer of
bytes. Ratios: ``0.8`` or ``80%``.
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


class UnitError(ValueError):
    """A value that is not a valid duration, size or ratio; the message says which forms are."""


def parse_duration_ms(value: object) -> int:
    """Parse a policy duration into milliseconds (may be zero or negative; rules judge that)."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a duration; write 30s, 5m, 1h, 1d or 500ms")
    if isinstance(value, int):
        return value * 1000
    if isinstance(value, float) and math.isfinite(value * 1000):
        return round(value * 1000)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m and math.isfinite(float(m.group(1)) * _DURATION_UNITS_MS[m.group(2)]):
            return round(float(m.group(1)) * _DURATION_UNITS_MS[m.group(2)])
        if re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value) * 1000
    raise UnitError(f"{value!r} is not a duration; write 30s, 5m, 1h, 1d, 500ms or seconds")


def format_duration_ms(ms: int | float) -> str:
    """Render milliseconds the way a policy would write them (``90s`` -> ``1m30s``)."""
    ms = int(ms)
    if ms < 0:
        return "-" + format_duration_ms(-ms)
    if ms < 1000:
        return f"{ms}ms"
    parts = []
    rest = ms
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest:
        parts.append(f"{rest}ms")
    return "".join(parts[:2])


def parse_size_bytes(value: object) -> int:
    """Parse a policy size into bytes."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a size; write 512B, 64KiB or 1MiB")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS \
                and math.isfinite(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]):
            return round(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
        if re.fullmatch(r"\s*\d+\s*", value):
            return int(value)
    raise UnitError(f"{value!r} is not a size; write 512B, 64KiB, 1MiB or a number of bytes")


def format_size_bytes(n: int | float) -> str:
    """Render bytes with binary units (``65536`` -> ``64.0 KiB``)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_ratio(value: object) -> float:
    """Parse ``0.8`` or ``80%`` into a float; the range is judged by lint rules."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a ratio; write 0.8 or 80%")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("%"):
                return float(text[:-1]) / 100
            return float(text)
        except ValueError:
            pass
    raise UnitError(f"{value!r} is not a ratio; write 0.8 or 80%")
