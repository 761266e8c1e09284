"""Property tests: over random policies and keyspaces, a flush removes exactly the right keys.

The oracle is independent of cachectl's matcher: a key belongs to the first namespace,
in policy order, whose template regex accepts it (docs/design.md). Keys carry glob
characters, spaces, binary and non-UTF-8 bytes; templates nest (``p:{id}`` vs
``p:reviews:{id}``) and overlap. One session server, emptied per example.
"""

from __future__ import annotations

from pathlib import Path

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachectl import flush
from cachectl.freshness import soft_expire_pttl_ms
from cachectl.policy.model import Namespace, Policy, SpanIndex, Thresholds
from cachectl.policy.template import KeyTemplate
from tests.support.redis_server import RedisServer

LITERALS = ["product", "reviews", "a*", "x?y", "[b]", "s p", "\\", "é", "p"]
PREFIXES = ["", "shop", "a*b", "[x]"]
THRESHOLDS = Thresholds(0.8, 0.95, 50, 10, 0.7, 0.2, 100)


def make_policy(prefix: str, templates: list[tuple[str, int, tuple[str, ...]]]) -> Policy:
    namespaces = {}
    for i, (source, stale_ms, tags) in enumerate(templates):
        name = f"ns{i}"
        namespaces[name] = Namespace(
            name=name, template=KeyTemplate(source, prefix), ttl_ms=600_000, stale_ms=stale_ms,
            stale_if_error_ms=stale_ms, jitter=0.0, critical=False, hot=False, hit_rate=0.8,
            max_value_bytes=None, tags=tags, early_refresh_beta=None, warm=None)
    return Policy(version=1, redis_url=None, key_prefix=prefix, cluster=False,
                  thresholds=THRESHOLDS, namespaces=namespaces, spans=SpanIndex("<test>"))


segment = st.one_of(
    st.sampled_from(LITERALS),
    st.sampled_from(["{v}", "{v}", "v{v}.json", "{v}s"]),
)


@st.composite
def template(draw: st.DrawFn) -> str:
    parts = draw(st.lists(segment, min_size=1, max_size=3))
    out, n = [], 0
    for p in parts:
        if "{v}" in p:
            p = p.replace("{v}", f"{{p{n}}}")
            n += 1
        out.append(p)
    return ":".join(out)


# a placeholder value: any non-empty bytes without ':' (binary, non-UTF-8, glob characters)
value = st.binary(min_size=1, max_size=6).filter(lambda b: b":" not in b) | st.sampled_from(
    [b"*", b"?", b"[a]", b"\\", b"a b", b"\xff\xfe", b"reviews", b"1"])


def render(tpl: KeyTemplate, values: list[bytes]) -> bytes:
    parts, i = [], 0
    for seg in tpl.segments:
        if seg.placeholder is None:
            parts.append(seg.prefix.encode())
        else:
            parts.append(seg.prefix.encode() + values[i] + seg.suffix.encode())
            i += 1
    return b":".join(parts)


def owner(policy: Policy, key: bytes) -> str | None:
    """The oracle: the first namespace in policy order whose template accepts the key."""
    for ns in policy.namespaces.values():
        if ns.template.regex.fullmatch(key):
            return ns.name
    return None


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Policy, list[bytes], list[str]]:
    prefix = draw(st.sampled_from(PREFIXES))
    sources = draw(st.lists(template(), min_size=1, max_size=4, unique=True))
    templates = [(s, draw(st.sampled_from([0, 60_000, 300_000])),
                  tuple(draw(st.lists(st.sampled_from(["t1", "t2"]), max_size=2, unique=True))))
                 for s in sources]
    policy = make_policy(prefix, templates)
    keys: set[bytes] = set()
    for ns in policy.namespaces.values():
        for _ in range(draw(st.integers(0, 6))):
            vals = [draw(value) for _ in ns.template.placeholders]
            keys.add(render(ns.template, vals))
    keys.update(draw(st.lists(st.binary(min_size=1, max_size=12), max_size=6)))
    internal = policy.internal_prefix.encode()
    keys.update([internal + b":counters:1", internal + b":lock:" + draw(value)])
    targets = draw(st.lists(st.sampled_from(list(policy.namespaces)), min_size=1, unique=True))
    return policy, sorted(keys), targets


def _load(r: redis.Redis, keys: list[bytes], ttl_ms: int | None) -> None:
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.set(k, b"value of " + k, px=ttl_ms)
    pipe.execute()


def _everything(r: redis.Redis) -> set[bytes]:
    return set(r.scan_iter(count=1000))


PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@PROPS
@given(scenario(), st.integers(1, 5))
def test_hard_flush_leaves_exactly_the_expected_keyspace(
        redis_server: RedisServer, case: tuple[Policy, list[bytes], list[str]], batch: int) -> None:
    policy, keys, targets = case
    r = redis_server.client()
    r.flushall()
    _load(r, keys, 600_000)
    internal = policy.internal_prefix.encode() + b":"
    doomed = {k for k in keys if owner(policy, k) in targets and not k.startswith(internal)}
    result = flush.flush_namespaces(r, policy, flush.select_targets(policy, namespaces=targets),
                                   batch=batch)
    audit = {flush.audit_key(policy).encode()} if doomed else set()
    assert _everything(r) == (set(keys) - doomed) | audit
    assert result.changed == len(doomed) == result.matched
    assert result.skipped == sum(t.other_namespace for t in result.targets)


@PROPS
@given(scenario())
def test_dry_run_counts_what_a_flush_would_remove(
        redis_server: RedisServer, case: tuple[Policy, list[bytes], list[str]]) -> None:
    policy, keys, targets = case
    r = redis_server.client()
    r.flushall()
    _load(r, keys, None)
    internal = policy.internal_prefix.encode() + b":"
    doomed = {k for k in keys if owner(policy, k) in targets and not k.startswith(internal)}
    selection = flush.select_targets(policy, namespaces=targets)
    dry = flush.flush_namespaces(r, policy, selection, dry_run=True, examples=100)
    plan = flush.plan_flush(r, policy, selection)
    assert _everything(r) == set(keys)
    assert dry.matched == plan.keys == len(doomed)
    assert {k for t in dry.targets for k in t.examples} == doomed


@PROPS
@given(scenario(), st.sampled_from([None, 1_000, 10_000_000]))
def test_soft_flush_keeps_every_key_within_the_stale_band(
        redis_server: RedisServer, case: tuple[Policy, list[bytes], list[str]],
        ttl_ms: int | None) -> None:
    policy, keys, targets = case
    targets = [n for n in targets if policy.namespace(n).stale_ms > 0]
    if not targets:
        return
    r = redis_server.client()
    r.flushall()
    _load(r, keys, ttl_ms)
    internal = policy.internal_prefix.encode() + b":"
    soft = {k for k in keys if owner(policy, k) in targets and not k.startswith(internal)}
    before = {k: r.pttl(k) for k in keys}
    flush.flush_namespaces(r, policy, flush.select_targets(policy, namespaces=targets, soft=True),
                          soft=True, batch=3)
    assert _everything(r) >= set(keys)
    for k in keys:
        assert r.get(k) == b"value of " + k
        pttl = r.pttl(k)
        if k in soft:
            owner_ns = policy.namespace(owner(policy, k) or "")
            band = soft_expire_pttl_ms(owner_ns)
            assert 0 < pttl <= band
            if 0 < before[k] <= band:
                assert pttl <= before[k]  # never lengthened
        elif before[k] == -1:
            assert pttl == -1
        else:
            assert pttl > before[k] - 5_000  # untouched (allowing for elapsed time)


def test_property_helpers_render_keys_the_template_accepts(tmp_path: Path) -> None:
    tpl = KeyTemplate("a*:{p0}:v{p1}.json", "shop")
    key = render(tpl, [b"\xff*", b"[x]"])
    assert key == b"shop:a*:\xff*:v[x].json"
    assert tpl.regex.fullmatch(key)


@PROPS
@given(scenario(), st.lists(st.booleans(), min_size=4, max_size=4), st.integers(1, 5))
def test_one_pass_clamps_and_removes_exactly_what_each_step_owns(
        redis_server: RedisServer, case: tuple[Policy, list[bytes], list[str]],
        clamp_flags: list[bool], batch: int) -> None:
    """``flush_in_one_pass`` (apply's single SCAN walk under a glob that covers every
    target): the keys of the remove step's namespaces go, those of the clamp step's get
    at most the ceiling (never a longer TTL), every other key is untouched."""
    policy, keys, targets = case
    clamp = [n for n, c in zip(targets, clamp_flags, strict=False) if c]
    remove = [n for n in targets if n not in clamp]
    ceiling = 300_000
    r = redis_server.client()
    r.flushall()
    ttls = [None, 100_000, 10_000_000]
    for i, ttl in enumerate(ttls):
        _load(r, keys[i::3], ttl)
    before = {k: r.pttl(k) for k in keys}
    internal = policy.internal_prefix.encode() + b":"
    owned = {k: owner(policy, k) for k in keys if not k.startswith(internal)}
    doomed = {k for k, ns in owned.items() if ns in remove}
    lowered = {k for k, ns in owned.items() if ns in clamp and not 0 < before[k] <= ceiling}
    steps = []
    if clamp:
        steps.append(flush.FlushStep(flush.select_targets(policy, namespaces=clamp),
                                     ceilings_ms=dict.fromkeys(clamp, ceiling)))
    if remove:
        steps.append(flush.FlushStep(flush.select_targets(policy, namespaces=remove)))
    results = flush.flush_in_one_pass(r, policy, steps, batch=batch)
    by_mode = {res.mode: res for res in results}
    audit = {flush.audit_key(policy).encode()} if any(res.matched for res in results) else set()
    assert _everything(r) == (set(keys) - doomed) | audit
    for k in set(keys) - doomed:
        pttl = r.pttl(k)
        if k in lowered:
            assert 0 < pttl <= ceiling, (k, pttl)
        elif before[k] == -1:
            assert pttl == -1, k
        else:
            assert before[k] - 5_000 < pttl <= before[k], k  # untouched
    if remove:
        assert by_mode[flush.FlushMode.HARD].changed == len(doomed)
    if clamp:
        clamped = by_mode[flush.FlushMode.CLAMP]
        assert clamped.changed == len(lowered)
        assert clamped.matched == sum(1 for ns in owned.values() if ns in clamp)
