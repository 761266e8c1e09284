"""Durations, sizes and ratios as a policy writes them."""

from __future__ import annotations

import pytest

from cachectl.policy.units import (
    UnitError,
    format_duration_ms,
    format_size_bytes,
    parse_duration_ms,
    parse_ratio,
    parse_size_bytes,
)


@pytest.mark.parametrize(("text", "ms"), [
    ("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("1d", 86_400_000),
    ("1.5h", 5_400_000), (" 10m ", 600_000), ("-5m", -300_000), ("0s", 0), ("45", 45_000),
    (45, 45_000), (0.5, 500),
])
def test_parse_duration(text: object, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("bad", ["5 minutes", "1w", "", "h", "1h30m", True, None, [1], "1e3s"])
def test_parse_duration_rejects_with_the_forms_it_takes(bad: object) -> None:
    with pytest.raises(UnitError, match="30s"):
        parse_duration_ms(bad)


@pytest.mark.parametrize(("ms", "text"), [
    (500, "500ms"), (30_000, "30s"), (90_000, "1m30s"), (3_600_000, "1h"),
    (86_400_000 + 3_600_000 + 60_000, "1d1h"), (-300_000, "-5m"), (0, "0ms"),
])
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration_ms(ms) == text


@pytest.mark.parametrize(("text", "size"), [
    ("512B", 512), ("64KiB", 65_536), ("1MiB", 1_048_576), ("1GiB", 1024**3), ("1KB", 1000),
    ("2mb", 2_000_000), (" 4 KiB ", 4096), ("1.5KiB", 1536), (100, 100), ("100", 100),
])
def test_parse_size(text: object, size: int) -> None:
    assert parse_size_bytes(text) == size


@pytest.mark.parametrize("bad", ["64 kilobytes", "KiB", "-1KiB", True, 1.5, "1TiB"])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(UnitError, match="64KiB"):
        parse_size_bytes(bad)


def test_format_size() -> None:
    assert format_size_bytes(100) == "100 B"
    assert format_size_bytes(65_536) == "64.0 KiB"
    assert format_size_bytes(3 * 1024**3) == "3.0 GiB"


@pytest.mark.parametrize(("text", "ratio"), [
    ("80%", 0.8), (" 95 % ", 0.95), (0.8, 0.8), (1, 1.0), ("0.5", 0.5), ("150%", 1.5),
])
def test_parse_ratio_takes_both_forms_and_leaves_the_range_to_lint(text: object, ratio: float) -> None:
    assert parse_ratio(text) == pytest.approx(ratio)


@pytest.mark.parametrize("bad", ["most", "%", True, None, "80%%"])
def test_parse_ratio_rejects(bad: object) -> None:
    with pytest.raises(UnitError, match="80%"):
        parse_ratio(bad)


@pytest.mark.parametrize("huge", [float("inf"), float("nan"), 1.8e305, "9" * 400 + "h", "1" * 400 + "MiB"])
def test_non_finite_and_huge_values_are_unit_errors_not_crashes(huge: object) -> None:
    with pytest.raises(UnitError):
        if isinstance(huge, str) and huge.endswith("MiB"):
            parse_size_bytes(huge)
        else:
            parse_duration_ms(huge)
