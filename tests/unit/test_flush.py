"""flush's pure logic: target selection, the everything-glob guard, pacing, rendering."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import given, settings
from rich.console import Console

from cachectl import flush
from cachectl.errors import UsageError
from cachectl.flush.keys import is_owned, owner_test
from cachectl.keyspace import NamespaceMatcher
from cachectl.policy import Policy, parse_policy
from cachectl.render import console as console_mod
from cachectl.render import flush as render
from tests.integration import test_flush_properties as props

POLICY = """\
version: 1
redis: {key_prefix: shop}
defaults: {ttl: 10m}
namespaces:
  product:  {key: "product:{id}", ttl: 1h, stale: 10m, tags: [catalog]}
  price:    {key: "price:{sku}", ttl: 5m, stale: 1m, tags: [catalog, pricing]}
  search:   {key: "search:{query:hash}:{page}", ttl: 15m, stale: 5m}
  cart:     {key: "cart:{user_id}", ttl: 30m, tags: [users]}
"""


@pytest.fixture
def policy() -> Policy:
    result = parse_policy(POLICY, "test.yaml", {})
    assert result.policy is not None
    return result.policy


def test_tags_expand_to_namespaces_once_in_order(policy: Policy) -> None:
    targets = flush.select_targets(policy, namespaces=["price"], tags=(),)
    assert [(t.kind, t.name, t.selector) for t in targets] == [
        ("namespace", "price", "namespace price")]
    targets = flush.select_targets(policy, tags=["catalog", "pricing"])
    assert [t.name for t in targets] == ["product", "price"]
    assert flush.describe(targets) == "tag catalog (product, price)"


def test_key_target_renders_the_template_with_hash(policy: Policy) -> None:
    (t,) = flush.select_targets(policy, key="search", key_params=["query=red shoes", "page=2"])
    assert t.kind == "key" and t.name == "search"
    assert t.key is not None and re.fullmatch(rb"shop:search:[0-9a-f]{16}:2", t.key)
    assert t.label == f"key {t.key.decode()}"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "nothing to flush"),
    ({"namespaces": ["product"], "tags": ["catalog"]}, "cannot be combined"),
    ({"namespaces": ["prodct"]}, "did you mean 'product'"),
    ({"tags": ["catalgo"]}, "no namespace carries tag"),
    ({"key": "product", "key_params": ["id"]}, "is not PARAM=VALUE"),
    ({"key": "product", "key_params": []}, "needs id"),
    ({"namespaces": ["product"], "key_params": ["id=1"]}, "unexpected argument"),
    ({"pattern": "shop:tmp:*"}, "needs --force"),
    ({"pattern": "*", "force": True}, "would match every key"),
    ({"pattern": "*:*", "force": True}, "would match every key of every namespace"),
    ({"pattern": "shop:*", "force": True}, "would match every key of every namespace"),
    ({"pattern": "s*p:?*", "force": True}, "would match every key of every namespace"),
    ({"pattern": "shop:*", "force": True, "soft": True}, "--soft needs"),
    ({"namespaces": ["cart"], "soft": True}, "no stale window"),
    ({"tags": ["users"], "soft": True}, "no stale window"),
])
def test_select_targets_refuses(policy: Policy, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as info:
        flush.select_targets(policy, **kwargs)  # type: ignore[arg-type]
    assert message in f"{info.value.message} {info.value.hint}"
    assert info.value.hint


@pytest.mark.parametrize(("pattern", "everything"), [
    ("*", True), ("**", True), ("?*", True), ("[a-z]*", True), ("*?*", True), ("", True),
    ("shop:*", False), ("*:session:*", False), ("\\*", False), ("[*", False), ("a", False),
])
def test_matches_everything(pattern: str, everything: bool) -> None:
    assert flush.matches_everything(pattern) is everything


@pytest.mark.parametrize(("pattern", "everything"), [
    ("*:*", True), ("shop:*", True), ("*:*:*", True), ("*:*:*:*", False),
    ("shop:product:*", False),
    ("*:tmp:*", False), ("*[0-9]", False),
])
def test_matches_policy_keyspace_reasons_about_the_pattern(
        policy: Policy, pattern: str, everything: bool) -> None:
    assert flush.matches_policy_keyspace(policy, pattern) is everything


@pytest.mark.parametrize(("glob", "key", "hit"), [
    ("shop:*", b"shop:x", True), ("shop:*", b"shopx", False), ("a?c", b"abc", True),
    ("a\\*", b"a*", True), ("a\\*", b"ab", False), ("[ab]x", b"bx", True),
    ("[^ab]x", b"bx", False), ("*", b"\xff\x00", True),
])
def test_sample_glob_agrees_with_redis_glob(glob: str, key: bytes, hit: bool) -> None:
    assert flush.glob_matcher(glob)(key) is hit


def test_governor_shrinks_and_pauses_when_latency_rises_then_recovers() -> None:
    g = flush.LatencyGovernor(1000, slow_ms=2.0)
    assert g.observe(0.2) == 0.0 and g.batch == 1000
    assert g.observe(5.0) == 0.0  # one hiccup: the moving average stays under 2 ms
    pause = g.observe(9.0)  # sustained: average 0.7*1.64 + 0.3*9 = 3.85 ms
    assert 0 < pause <= 0.05 and g.batch == 500 and g.backoffs == 1
    g.observe(9.0)
    assert g.batch == 250
    for _ in range(12):
        g.observe(0.3)
    assert g.batch == 1000 and g.average_ms is not None and g.average_ms < 2
    assert g.max_rtt_ms == 9.0


def test_governor_judges_against_its_own_baseline() -> None:
    g = flush.LatencyGovernor(1000)
    assert g.observe(3.0) == 0.0  # a remote server: 3 ms is its normal
    for _ in range(10):
        assert g.observe(6.0) == 0.0  # under 4x baseline
    for _ in range(5):
        g.observe(40.0)
    assert g.backoffs >= 1 and g.batch < 1000
    for _ in range(100):
        g.observe(50.0)
    assert g.batch == flush.MIN_BATCH  # never below the floor


def test_soften_counts_add() -> None:
    total = flush.SoftenCounts(1, 0, 2, 3) + flush.SoftenCounts(4, 1, 0, 1)
    assert total == flush.SoftenCounts(5, 1, 2, 4)


def _result(mode: flush.FlushMode = flush.FlushMode.HARD, dry_run: bool = False,
            interrupted: bool = False) -> flush.FlushResult:
    t = flush.TargetResult("namespace product", "namespace", "product", matched=10, changed=7,
                          vanished=2, other_namespace=1, examples=(b"shop:product:[bold]x\xff",))
    return flush.FlushResult(mode, dry_run, "namespace product", (t,), 2.0, 3, 1, 0.05, 4.2,
                            interrupted, "1-0")


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=100, color_system=None, highlight=False), buf


def test_result_json_shape() -> None:
    buf = io.StringIO()
    console_mod.emit_json(_result(), buf)
    doc = json.loads(buf.getvalue())
    assert (doc["matched"], doc["removed"], doc["skipped"], doc["keys_per_s"]) == (10, 7, 3, 5.0)
    assert doc["targets"][0]["skipped_detail"] == {
        "vanished": 2, "other_namespace": 1, "already_stale": 0}
    assert doc["targets"][0]["examples"] == ["shop:product:[bold]x\\xff"]
    soft = json.loads(json.dumps(console_mod.jsonable(_result(flush.FlushMode.SOFT))))
    assert "softened" in soft and "removed" not in soft and "no_ttl" in soft["targets"][0]


def test_render_result_summary_and_keys_are_not_markup() -> None:
    con, buf = _console()
    render.render_result(_result(dry_run=True), con)
    out = buf.getvalue()
    assert "dry run" in out and "nothing changed; matched 10" in out
    assert "shop:product:[bold]x\\xff" in out
    con, buf = _console()
    render.render_result(_result(), con)
    out = buf.getvalue()
    assert "matched 10, removed 7, skipped 3 in 2.00 s (5 keys/s)" in out
    assert "2 gone" in out and "1 other namespace" in out
    assert "slowed down 1x" in out and "audit entry 1-0" in out


def test_plan_text_says_estimated_or_counted() -> None:
    tp = flush.TargetPlan("namespace product", "namespace", "product", 1_234_567, True,
                         (b"shop:product:1",))
    plan = flush.FlushPlan(flush.FlushMode.HARD, (tp,), 1_234_567, True, 20_000, 2_000_000)
    lines = render.plan_text(plan)
    assert lines[0] == ("About to remove ~1,234,567 keys (estimated from a sample of 20,000 of "
                        "2,000,000 keys):")
    assert lines[1] == "  namespace product: ~1,234,567 keys"
    exact = flush.FlushPlan(flush.FlushMode.SOFT, (flush.TargetPlan(
        "namespace product", "namespace", "product", 3, False, (), 600_000),), 3, False, 0, 9)
    assert render.plan_text(exact) == [
        "About to soften 3 keys (counted):", "  namespace product: 3 keys, PTTL -> 600,000 ms"]


def test_history_lines() -> None:
    e = flush.AuditEntry("1-0", "2026-11-27T03:00:00+00:00", "alice", "ops", "tag catalog (a, b)",
                        "soft", 5, 4, 1, 0.5, True)
    con, buf = _console()
    render.render_history("shop:cachectl:audit", (e,), con)
    assert ("2026-11-27 03:00:00Z  alice@ops  soft  tag catalog (a, b): matched 5, softened 4, "
            "skipped 1 in 0.50 s  (interrupted)") in buf.getvalue()
    con, buf = _console()
    render.render_history("k", (), con)
    assert "no flush recorded yet" in buf.getvalue()


@settings(max_examples=150, deadline=None)
@given(props.scenario())
def test_fast_owner_test_agrees_with_the_whole_policy_matcher(
        case: tuple[Policy, list[bytes], list[str]]) -> None:
    # the per-key test consults only earlier namespaces whose templates can overlap;
    # for every key a target's regex accepts it must answer as the full matcher does
    policy, keys, targets = case
    matcher = NamespaceMatcher.from_policy(policy)
    for name in targets:
        target = flush.FlushTarget("namespace", name, f"namespace {name}")
        fast = owner_test(policy, target)
        regex = policy.namespace(name).template.regex
        for k in keys:
            if regex.fullmatch(k):
                assert fast(k) == is_owned(policy, matcher, target, k), k


def test_chunks_fill_batches_across_scans_and_never_mix_nodes() -> None:
    from cachectl.flush.keys import regroup_batches

    a, b = object(), object()
    scans = [(a, [b"1", b"2"]), (a, [b"3"]), (a, [b"4", b"5", b"6"]), (b, [b"7"]), (b, [b"8"])]
    sizes = iter([2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3])  # the governor may change it between
    out = list(regroup_batches(iter(scans), lambda: next(sizes)))
    assert [(n is a, keys) for n, keys in out] == [
        (True, [b"1", b"2"]), (True, [b"3", b"4"]), (True, [b"5", b"6"]), (False, [b"7", b"8"])]


class _FakeNode:
    """SCAN over a fixed list of replies; fails at ``fail_at`` if given."""

    def __init__(self, replies: list[tuple[int, list[bytes]]], fail_at: int | None = None) -> None:
        self.replies = replies
        self.fail_at = fail_at
        self.calls: list[tuple[int, str, int]] = []

    def scan(self, cursor: int, match: str, count: int) -> tuple[int, list[bytes]]:
        self.calls.append((cursor, match, count))
        if self.fail_at is not None and len(self.calls) > self.fail_at:
            raise RuntimeError("connection lost")
        return self.replies[len(self.calls) - 1]


def test_scan_ahead_reads_every_node_in_order_and_passes_errors_on() -> None:
    from contextlib import closing

    from cachectl.flush.keys import ScanAhead

    one = _FakeNode([(5, [b"a"]), (7, []), (0, [b"b"])])
    two = _FakeNode([(0, [b"c"])])
    with closing(ScanAhead([one, two], "shop:*", lambda: 100)) as scans:
        got = [(node, keys) for node, keys in scans]
    assert got == [(one, [b"a"]), (one, [b"b"]), (two, [b"c"])]
    assert [c[0] for c in one.calls] == [0, 5, 7] and one.calls[0][1:] == ("shop:*", 100)
    broken = _FakeNode([(3, [b"x"])], fail_at=1)
    with closing(ScanAhead([broken], "shop:*", lambda: 100)) as scans, \
            pytest.raises(RuntimeError, match="connection lost"):
        list(scans)


def test_scan_ahead_stops_when_closed_early() -> None:
    from cachectl.flush.keys import ScanAhead

    endless = _FakeNode([(1, [b"k"])] * 10_000)
    scans = ScanAhead([endless], "*", lambda: 10)
    first = next(iter(scans))
    assert first == (endless, [b"k"])
    scans.close()  # joins the thread: it stops after at most `depth` more replies
    calls = len(endless.calls)
    assert calls <= 5
    assert len(endless.calls) == calls


def test_union_glob_covers_every_target_and_narrows_the_scan(policy: Policy) -> None:
    from cachectl.flush.keys import union_glob
    from cachectl.keyspace.matcher import glob_matcher

    def targets(*names: str) -> list[flush.FlushTarget]:
        return [flush.FlushTarget("namespace", n, f"namespace {n}") for n in names]

    assert union_glob(policy, targets("search")) == "shop:search:*:*"  # one: its own glob
    # shop:product: and shop:price: share "shop:pr", differ until the shorter one ends
    glob = union_glob(policy, targets("product", "price"))
    assert glob == "shop:pr[io][cd][eu][:c]*"
    assert union_glob(policy, targets("product", "cart", "price")) == \
        "shop:[cp][ar][ior][cdt][:eu]*"
    matches = glob_matcher(glob)
    assert matches(b"shop:product:1") and matches(b"shop:price:sku-1")
    assert not matches(b"shop:cart:7") and not matches(b"shop:search:ab:1")
    with pytest.raises(ValueError, match="namespace targets"):
        union_glob(policy, [*targets("product"), flush.FlushTarget("pattern", "x*", "pattern")])


def test_shared_batches_split_each_reply_among_targets_and_never_mix_nodes(
        policy: Policy) -> None:
    from cachectl.flush.keys import shared_batches, target_selector

    product, price = (flush.FlushTarget("namespace", n, f"namespace {n}")
                      for n in ("product", "price"))
    a, b = object(), object()
    scans = [(a, [b"shop:product:1", b"shop:price:1", b"shop:product:2"]),
             (a, [b"shop:product:3", b"shop:cart:1"]),
             (b, [b"shop:price:2", b"shop:product:4"])]
    others: list[tuple[str, int]] = []
    out = list(shared_batches(iter(scans), [(t, target_selector(policy, t)) for t in (product, price)],
                              lambda: 2, lambda t, n: others.append((t.name, n))))
    assert [(n is a, t.name, keys) for n, t, keys in out] == [
        (True, "product", [b"shop:product:1", b"shop:product:2"]),
        (True, "product", [b"shop:product:3"]),  # the node changed: flushed, not mixed
        (True, "price", [b"shop:price:1"]),
        (False, "product", [b"shop:product:4"]),  # the walk's end: each target's rest
        (False, "price", [b"shop:price:2"])]
    assert others == []
