"""Pure logic of the keyspace layer: shapes, pattern collapse, Lua patterns, medians, previews."""

from __future__ import annotations

import json
import math
import re

import pytest

from cachectl.inspect import design_effect, estimate_count, estimate_memory, preview_text
from cachectl.keyspace import (
    HIST_BASE,
    NamespaceTally,
    collapse_shapes,
    key_shape,
    lua_pattern,
)
from cachectl.keyspace.results import ShapeAccumulator
from cachectl.policy.template import KeyTemplate


@pytest.mark.parametrize(("key", "shape"), [
    (b"order:1234:items", "order:*:items"),
    (b"user:alice", "user:alice"),
    (b"session:3f2a-bc", "session:*"),
    (b"tmp key with spaces", "*"),
    (b"\xff\xfe:x", "*:x"),
    (b"a::b", "a::b"),
    (b"cfg:" + b"x" * 41, "cfg:*"),
    (b"st*r:1", "*:*"),
])
def test_key_shape_hides_variable_segments(key: bytes, shape: str) -> None:
    assert key_shape(key) == shape


def test_collapse_merges_positions_with_many_words() -> None:
    shapes = {f"user:{name}": ShapeAccumulator(1, 1, 10, 100, f"user:{name}".encode())
              for name in "abcdefghij"}
    shapes["user"] = ShapeAccumulator(2, 2, 5, 25, b"user")
    shapes["cfg:a"] = ShapeAccumulator(1, 1, 1, 1, b"cfg:a")
    shapes["cfg:b"] = ShapeAccumulator(1, 1, 1, 1, b"cfg:b")
    merged = collapse_shapes(shapes)
    assert set(merged) == {"user:*", "user", "cfg:a", "cfg:b"}  # two words stay apart
    assert merged["user:*"].keys == 10 and merged["user:*"].memory == 100
    assert merged["user:*"].memory_sq == 1000


@pytest.mark.parametrize("template", ["product:{id}", "we*ird?[x]%.:{id}", "search:{q:hash}",
                                      "product:{id}:v{n}.json", "a-b+c(d):{x}"])
def test_lua_pattern_escapes_every_magic_character(template: str) -> None:
    pattern = lua_pattern(KeyTemplate(template, "shop"))
    assert pattern.startswith("^shop:") and pattern.endswith("$")
    # outside the placeholder classes no Lua magic character appears unescaped
    stripped = pattern[1:-1].replace("[^:]+", "").replace("[0-9a-f]", "")
    assert re.search(r"(?<!%)[()\.\[\]*+\-?^$]", re.sub(r"%.", "", stripped)) is None


def test_median_from_histogram_is_within_half_a_bucket() -> None:
    values = [1000, 2000, 3000, 50_000, 60_000]
    hist: dict[int, int] = {}
    for v in values:
        b = math.floor(math.log(v) / math.log(HIST_BASE))
        hist[b] = hist.get(b, 0) + 1
    tally = NamespaceTally("ns", 5, 5, 0, 0, 0, 5, 0, 0, 0, 0, 1000, 60_000,
                           tuple(sorted(hist.items())), (), (), ())
    assert tally.ttl_median_ms() == pytest.approx(3000, rel=0.006)


def test_preview_formats() -> None:
    text, fmt, cut = preview_text(b'{"a": [1, 2]}', False, 100)
    assert fmt == "json" and json.loads(text) == {"a": [1, 2]} and not cut
    assert preview_text(b"hello", False, 100) == ("hello", "text", False)
    assert preview_text(b"\x00\x01", False, 100) == ("00 01", "hex", False)
    text, fmt, cut = preview_text(b'{"a": 1', True, 100)  # truncated JSON stays text
    assert fmt == "text" and cut
    text, fmt, cut = preview_text(bytes(range(200)), False, 30)
    assert fmt == "hex" and cut and len(text.split()) == 10


def test_estimates_and_margins() -> None:
    class Survey:
        scanned = 1000
        total_keys = 10_000
        live_keys = 0.0  # unknown: DBSIZE is the total

    keys, var = estimate_count(250, Survey(), exact_counts=False)  # type: ignore[arg-type]
    assert keys == 2500
    assert var == pytest.approx(10_000 ** 2 * 0.25 * 0.75 / 1000)
    assert estimate_count(250, Survey(), exact_counts=True) == (250.0, 0.0)  # type: ignore[arg-type]
    mem, margin = estimate_memory(2500.0, 0.0, 10, 1000, 100_000)  # every key 100 bytes
    assert mem == 250_000 and margin == 0


def test_estimates_discount_keys_redis_reports_as_expired() -> None:
    class Survey:
        scanned = 1000
        total_keys = 10_000
        live_keys = 9_000.0  # INFO stats expired_stale_perc:10

    keys, _ = estimate_count(250, Survey(), exact_counts=False)  # type: ignore[arg-type]
    assert keys == 2250



def test_design_effect_widens_margins_only_when_runs_disagree_beyond_chance() -> None:
    import random

    rng = random.Random(7)
    # runs of independent keys, 30 % of them in stratum 0: no widening (the spread of
    # the runs' shares is what independent draws give)
    independent = []
    for _ in range(40):
        hits = sum(rng.random() < 0.3 for _ in range(2000))
        independent.append((hits, 2000 - hits, 0))
    assert design_effect(tuple(independent), 0) == pytest.approx(1.0, abs=0.6)
    # runs whose shares swing between 10 % and 50 % (overlapping or clustered reads):
    # the variance is many times the textbook one
    clustered = tuple((200, 1800, 0) if i % 2 else (1000, 1000, 0) for i in range(40))
    assert design_effect(clustered, 0) > 20
    # never narrower than independent draws, and neutral without enough runs
    assert design_effect(tuple((600, 1400, 0) for _ in range(40)), 0) == 1.0
    assert design_effect(((600, 1400, 0),), 0) == 1.0 and design_effect((), 0) == 1.0
    # it multiplies the count's variance
    class Survey:
        scanned = 1000
        total_keys = 10_000
        live_keys = 0.0

    _, plain = estimate_count(250, Survey(), exact_counts=False)  # type: ignore[arg-type]
    _, wide = estimate_count(250, Survey(), exact_counts=False, deff=4.0)  # type: ignore[arg-type]
    assert wide == pytest.approx(4 * plain)


def test_stratum_quota_water_fills() -> None:
    from cachectl.keyspace.survey import stratum_quota

    # first call: nothing seen yet, a stratum may take half of this call's share
    assert stratum_quota([0, 0, 0, 0], 0, calls_left=10, to_measure=1200) == 60
    # two strata give 100 and 10 keys a call: 60 a call to measure -> 10 + 50
    assert stratum_quota([1000, 100, 0, 0], 10, calls_left=5, to_measure=300) == 50
    # everything seen can be measured: the quota exceeds the biggest stratum's rate
    assert stratum_quota([100, 10, 0, 0], 10, calls_left=5, to_measure=10_000) > 10
    # nothing left to measure: one key per stratum keeps the mean defined
    assert stratum_quota([100, 10, 0, 0], 10, calls_left=5, to_measure=0) == 1
