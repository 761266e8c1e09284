"""The survey against a real server: a keyspace of known composition, counted exactly.

Every key is written by the test with the namespace it belongs to, so the expected
counts, memory (MEMORY USAGE summed directly), TTL figures and findings are known
independently of the matcher under test. Both methods (server-side Lua and the
pipelined fallback) must agree with it.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
import redis

from cachectl.freshness import Freshness, classify, ttl_bounds_ms
from cachectl.keyspace import NamespaceMatcher, lua_pattern, survey_keyspace
from cachectl.policy import Policy, parse_policy

POLICY = """
version: 1
redis: {key_prefix: shop}
defaults: {ttl: 10m, jitter: 10%}
namespaces:
  product: {key: "product:{id}", ttl: 1h, stale: 10m, stale_if_error: 1h, max_value_bytes: 200B}
  reviews: {key: "product:reviews:{id}", ttl: 30m, jitter: 0%}
  variant: {key: "product:{id}:v{n}.json", ttl: 30m}
  search: {key: "search:{query:hash}", ttl: 5m}
  empty: {key: "empty:{id}", ttl: 1m}
"""


def load(text: str = POLICY) -> Policy:
    result = parse_policy(text, "policy.yaml", {})
    assert result.policy is not None, result.diagnostics
    return result.policy


@dataclass
class Expected:
    """What the test wrote, by namespace (None: unmatched; '-': cachectl's own keys)."""

    keys: dict[str | None, list[bytes]] = field(default_factory=lambda: defaultdict(list))

    def add(self, ns: str | None, key: bytes) -> None:
        self.keys[ns].append(key)


HOUR = 3_600_000


def build_keyspace(r: redis.Redis, scale: int = 1) -> Expected:
    """Write a keyspace with every awkward key we know of; return who owns what."""
    exp = Expected()
    pipe = r.pipeline(transaction=False)

    def put(ns: str | None, key: bytes, value: bytes = b"v", px: int | None = None) -> None:
        exp.add(ns, key)
        pipe.set(key, value, px=px)

    # product: fresh, stale, fail-safe, no TTL, too long, oversize; awkward ids
    for i in range(50 * scale):
        put("product", b"shop:product:%d" % i, b'{"id": %d}' % i, px=HOUR + 60 * 60_000 + i)
    for i in range(7):
        put("product", b"shop:product:stale%d" % i, px=55 * 60_000)  # G=1h: stale is (50m, 1h]
    for i in range(3):
        put("product", b"shop:product:failsafe%d" % i, px=20 * 60_000)
    for i in range(4):
        put("product", b"shop:product:nottl%d" % i)
    for i in range(2):
        put("product", b"shop:product:long%d" % i, px=5 * HOUR)
    for i in range(3):
        put("product", b"shop:product:big%d" % i, b"x" * 300, px=2 * HOUR)
    for odd in (b"a b", b"st*r", b"q?m", b"br[ack]et", b"\xff\xfe\x00bin", b"caf\xc3\xa9",
                b"back\\slash"):
        put("product", b"shop:product:" + odd, px=2 * HOUR)
    # a big hash (not a string): its memory counts as its size
    exp.add("product", b"shop:product:hash")
    pipe.hset(b"shop:product:hash", mapping={f"f{i}": "y" * 20 for i in range(40)})
    pipe.pexpire(b"shop:product:hash", 2 * HOUR)
    # nested namespace and a suffixed one: never counted as product
    for i in range(30 * scale):
        put("reviews", b"shop:product:reviews:%d" % i, px=30 * 60_000)
    for i in range(5):
        put("variant", b"shop:product:%d:v%d.json" % (i, i), px=30 * 60_000)
    for q in ("red shoes", "blue*", "[x]"):
        digest = hashlib.blake2b(q.encode(), digest_size=8).hexdigest().encode()
        put("search", b"shop:search:" + digest, px=5 * 60_000)
    # not hex: unmatched
    put(None, b"shop:search:NOT-A-DIGEST-0000", px=60_000)
    # unmatched keys in operator-recognisable shapes
    for i in range(20):
        put(None, b"order:%d:items" % i, px=HOUR)
    for name in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
                 "judy"):
        put(None, b"user:" + name.encode())
    put(None, b"tmp key with spaces")
    put(None, b"\x80\x81:\xfe")
    put(None, b"shop:product:")  # empty id: not a product
    put(None, b"shop:product:a:b")  # two segments: not a product either
    # cachectl's own keys are neither a namespace nor unmatched
    put("-", b"shop:cachectl:counters:1", px=HOUR)
    pipe.execute()
    return exp


def memory_of(r: redis.Redis, keys: list[bytes]) -> int:
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.memory_usage(k)
    return sum(pipe.execute())


@pytest.fixture
def known(redis_client: redis.Redis) -> tuple[redis.Redis, Expected]:
    return redis_client, build_keyspace(redis_client)


@pytest.mark.parametrize("use_lua", [True, False], ids=["lua", "pipeline"])
def test_survey_counts_every_namespace_exactly(known: tuple[redis.Redis, Expected],
                                               use_lua: bool) -> None:
    r, exp = known
    policy = load()
    survey = survey_keyspace(r, policy, use_lua=use_lua)
    assert survey.method == ("lua" if use_lua else "pipeline")
    assert not survey.sampled
    total = sum(len(v) for v in exp.keys.values())
    assert survey.total_keys == total
    assert survey.scanned == total
    assert survey.measured == total
    assert survey.gone == 0 and survey.denied == 0
    by_name = {t.name: t for t in survey.namespaces}
    for name in policy.namespaces:
        keys = exp.keys.get(name, [])
        t = by_name[name]
        assert t.keys == len(keys), name
        assert t.seen == len(keys), name
        assert t.memory_bytes == memory_of(r, keys), name
    assert by_name["empty"].keys == 0 and by_name["empty"].memory_bytes == 0
    assert survey.internal_keys == 1
    assert survey.internal_bytes == memory_of(r, exp.keys["-"])
    unmatched = exp.keys[None]
    assert sum(s.keys for s in survey.unmatched) == len(unmatched)
    assert sum(s.memory_bytes for s in survey.unmatched) == memory_of(r, unmatched)


@pytest.mark.parametrize("use_lua", [True, False], ids=["lua", "pipeline"])
def test_survey_judges_ttl_and_size_like_the_freshness_rule(
        known: tuple[redis.Redis, Expected], use_lua: bool) -> None:
    r, exp = known
    policy = load()
    survey = survey_keyspace(r, policy, use_lua=use_lua, examples=10)
    by_name = {t.name: t for t in survey.namespaces}
    for name, ns in policy.namespaces.items():
        keys = exp.keys.get(name, [])
        pttls = [r.pttl(k) for k in keys]
        states = Counter(classify(p, ns) for p in pttls)
        t = by_name[name]
        # TTLs tick between the survey and this read: states compare exactly because no
        # key sits within a few seconds of a band edge
        assert t.fresh == states[Freshness.FRESH], name
        assert t.stale == states[Freshness.STALE], name
        assert t.fail_safe == states[Freshness.FAIL_SAFE], name
        assert t.no_ttl == states[Freshness.NO_TTL], name
        high = ttl_bounds_ms(ns)[1]
        assert t.ttl_too_long == sum(1 for p in pttls if p > high), name
        expiring = [p for p in pttls if p > 0]
        if expiring:
            assert t.ttl_min_ms is not None and t.ttl_max_ms is not None
            assert abs(t.ttl_min_ms - min(expiring)) < 5000
            assert abs(t.ttl_max_ms - max(expiring)) < 5000
            median = sorted(expiring)[(len(expiring) - 1) // 2]
            assert t.ttl_median_ms() == pytest.approx(median, rel=0.01, abs=5000)
    product = by_name["product"]
    assert product.stale == 7 and product.fail_safe == 3 and product.no_ttl == 4
    assert product.ttl_too_long == 2
    assert sorted(product.examples_no_ttl) == sorted(b"shop:product:nottl%d" % i for i in range(4))
    assert sorted(k for k, _ in product.examples_ttl_too_long) == [
        b"shop:product:long0", b"shop:product:long1"]
    # three 300-byte strings (their STRLEN, not their memory) and the hash (its memory)
    oversize = dict(product.examples_oversize)
    assert product.oversize == 4
    assert {oversize[b"shop:product:big%d" % i] for i in range(3)} == {300}
    assert oversize[b"shop:product:hash"] == r.memory_usage(b"shop:product:hash")


@pytest.mark.parametrize("use_lua", [True, False], ids=["lua", "pipeline"])
def test_unmatched_keys_are_grouped_into_patterns(known: tuple[redis.Redis, Expected],
                                                  use_lua: bool) -> None:
    r, _ = known
    survey = survey_keyspace(r, load(), use_lua=use_lua)
    shapes = {s.pattern: s.keys for s in survey.unmatched}
    assert shapes["order:*:items"] == 20
    assert shapes["user:*"] == 10  # ten distinct words in one position: a variable
    assert shapes["*"] == 1  # "tmp key with spaces"
    assert shapes["*:*"] == 1  # the binary key
    assert shapes["shop:search:*"] == 1
    assert sum(shapes.values()) == len(build_unmatched_count())
    order = [s.memory_bytes for s in survey.unmatched]
    assert order == sorted(order, reverse=True)


def build_unmatched_count() -> list[int]:
    return [0] * (1 + 20 + 10 + 1 + 1 + 2)


@pytest.mark.parametrize("use_lua", [True, False], ids=["lua", "pipeline"])
def test_biggest_keys_are_the_top_n_by_memory(known: tuple[redis.Redis, Expected],
                                              use_lua: bool) -> None:
    r, exp = known
    survey = survey_keyspace(r, load(), top=3, use_lua=use_lua)
    every = [k for ns, keys in exp.keys.items() if ns != "-" for k in keys]
    sizes = sorted((r.memory_usage(k) for k in every), reverse=True)
    assert [b.memory_bytes for b in survey.biggest] == sizes[:3]
    assert survey.biggest[0].key == b"shop:product:hash"
    assert survey.biggest[0].namespace == "product"


def test_lua_patterns_agree_with_the_python_matcher(redis_client: redis.Redis) -> None:
    policy = load()
    samples = [b"shop:product:1", b"shop:product:reviews:1", b"shop:product:1:v2.json",
               b"shop:product:a b", b"shop:product:\xff\x00", b"shop:product:", b"shop:product:a:b",
               b"shop:search:0123456789abcdef", b"shop:search:0123456789ABCDEF",
               b"shop:product:1:vX.json", b"shop:product:1:v.json", b"xshop:product:1",
               b"shop:product:1\n", b"shop:empty:1", b"shop:empty:%"]
    matcher = NamespaceMatcher.from_policy(policy)
    names = list(policy.namespaces)
    patterns = [lua_pattern(ns.template) for ns in policy.namespaces.values()]
    script = """
for j = 2, #ARGV do if string.find(ARGV[1], ARGV[j]) then return j - 1 end end
return 0"""
    for key in samples:
        got = redis_client.eval(script, 0, key, *patterns)
        want = matcher.namespace_of(key)
        assert (names[got - 1] if got else None) == (want.name if want else None), key


def test_glob_characters_in_templates_are_matched_literally(redis_client: redis.Redis) -> None:
    policy = load("""
version: 1
namespaces:
  odd: {key: "we*ird?[x]%:{id}", ttl: 1m}
""")
    redis_client.set(b"we*ird?[x]%:1", b"v", px=60_000)
    redis_client.set(b"weXXird?[x]%:1", b"v", px=60_000)  # what the glob * would accept
    redis_client.set(b"weird?x%:1", b"v", px=60_000)
    survey = survey_keyspace(redis_client, policy)
    assert survey.namespaces[0].keys == 1
    assert sum(s.keys for s in survey.unmatched) == 2


def test_sampled_survey_on_a_small_keyspace_counts_exactly(known: tuple[redis.Redis, Expected]
                                                           ) -> None:
    r, exp = known
    survey = survey_keyspace(r, load(), sample=40)
    total = sum(len(v) for v in exp.keys.values())
    # 5·40 >= the keyspace: every key is attributed, every k-th measured
    assert survey.sampled
    assert survey.scanned == total
    assert survey.measured < total
    assert {t.name: t.seen for t in survey.namespaces}["product"] == len(exp.keys["product"])


def test_keys_expiring_mid_scan_are_tolerated(redis_client: redis.Redis) -> None:
    pipe = redis_client.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(b"shop:product:%d" % i, b"v", px=1 if i % 2 else HOUR)
    pipe.execute()
    survey = survey_keyspace(redis_client, load())
    product = survey.namespaces[0]
    assert product.keys == 1500  # the expired half is never counted
    assert survey.scanned <= 3000



@pytest.mark.parametrize("use_lua", [True, False], ids=["lua", "pipeline"])
@pytest.mark.parametrize("n", [12_000, 33_000])
def test_lane_scan_counts_each_key_once(redis_client: redis.Redis, n: int,
                                        use_lua: bool) -> None:
    """Big nodes are scanned as four lanes (quarters of the cursor space); right after
    loading, while the table may still be rehashing, every key is counted exactly once.
    The pipelined path (--no-lua) has no lanes and walks the whole cursor space."""
    pipe = redis_client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(b"shop:product:%d" % i, b"v" * (i % 13), px=HOUR)
    pipe.execute()
    survey = survey_keyspace(redis_client, load(), use_lua=use_lua)
    product = survey.namespaces[0]
    assert survey.method == ("lua" if use_lua else "pipeline")
    assert survey.scanned == n
    assert product.keys == n
    assert product.memory_bytes == memory_of(redis_client, [b"shop:product:%d" % i
                                                            for i in range(n)])


def test_a_sample_measures_small_namespaces_as_much_as_big_ones(
        redis_client: redis.Redis) -> None:
    """Measurements are spread over the strata, not over the keys: reviews (10 % of the
    keys read) gets far more than the 10 % of N a uniform draw would give it (each run
    measures its strata evenly, up to what a stratum has), and N are measured in all."""
    pipe = redis_client.pipeline(transaction=False)
    for i in range(27_000):
        pipe.set(b"shop:product:%d" % i, b"p" * (i % 50), px=HOUR)
    for i in range(3_000):
        pipe.set(b"shop:product:reviews:%d" % i, b"r" * (i % 70), px=HOUR)
    pipe.execute()
    survey = survey_keyspace(redis_client, load(), sample=1000)
    by_name = {t.name: t for t in survey.namespaces}
    product, reviews = by_name["product"], by_name["reviews"]
    assert survey.sampled and survey.scanned < 30_000
    assert 900 <= survey.measured <= 1100
    assert reviews.keys >= 0.3 * survey.measured, (reviews.keys, product.keys)
    assert reviews.keys + product.keys == survey.measured
    # the seen keys are still a uniform sample: reviews is about 10 % of them
    assert 0.07 <= reviews.seen / survey.scanned <= 0.13


@pytest.mark.parametrize("use_lua", [True, False], ids=["lua", "pipeline"])
def test_patterns_are_tried_by_their_first_distinct_byte(redis_client: redis.Redis,
                                                         use_lua: bool) -> None:
    """No key prefix and a template that starts with a placeholder: the script's
    dispatch on the first differing byte still attributes exactly like the matcher."""
    policy = load("""
version: 1
namespaces:
  tenant_user: {key: "{tenant}:user:{id}", ttl: 1h}
  user: {key: "user:{id}", ttl: 1h}
  usage: {key: "usage:{day}", ttl: 1h}
  config: {key: "config", ttl: 1h}
""")
    keys = [b"user:1", b"acme:user:2", b"user:user:3", b"usage:mon", b"config", b"configx",
            b"u", b"", b"cachectl:x", b"\xff:user:4", b"usage:a:b", b"user:"]
    for k in keys:
        redis_client.set(k, b"v", px=HOUR)
    matcher = NamespaceMatcher.from_policy(policy)
    want = Counter(ns.name for k in keys if k != b"cachectl:x"
                   for ns in [matcher.namespace_of(k)] if ns is not None)
    survey = survey_keyspace(redis_client, policy, use_lua=use_lua)
    assert {t.name: t.keys for t in survey.namespaces if t.keys} == dict(want)
    assert survey.internal_keys == 1


def test_the_script_shapes_unmatched_keys_like_key_shape(redis_client: redis.Redis) -> None:
    keys = [b"a" * 41 + b":x", b"a" * 40 + b":y", b"ok:fine.name-x_y", b"ok:\xc3\xa9t\xc3\xa9",
            b"::", b"x:", b":x", b"order:12:items", b"q?:[x]", b"*:a", b"A.B-c_D:" + b"9" * 50]
    for k in keys:
        redis_client.set(k, b"v")
    by_lua = {s.pattern: s.keys for s in survey_keyspace(redis_client, load()).unmatched}
    by_python = {s.pattern: s.keys for s in survey_keyspace(redis_client, load(),
                                                            use_lua=False).unmatched}
    assert by_lua == by_python
    assert by_lua["*:x"] == 1 and by_lua["a" * 40 + ":y"] == 1 and by_lua["::"] == 1
