"""flush against a real redis-server: exactly the right keys, paced, audited, interruptible."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from cachectl import flush
from cachectl.errors import InterruptedWork, UsageError
from cachectl.flush import history
from cachectl.freshness import soft_expire_pttl_ms
from cachectl.policy import Policy, load_policy

POLICY = """\
version: 1
redis: {key_prefix: shop}
defaults: {ttl: 10m}
namespaces:
  product:         {key: "product:{id}", ttl: 1h, stale: 10m, tags: [catalog]}
  product_reviews: {key: "product:reviews:{id}", ttl: 30m, stale: 5m, tags: [catalog]}
  price:           {key: "price:{sku}", ttl: 5m, stale: 1m, stale_if_error: 30m, tags: [catalog]}
  cart:            {key: "cart:{user_id}", ttl: 30m}
  anything:        {key: "{kind}:{id}", ttl: 1m}
"""


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    return load_policy(path)


def _load(r: redis.Redis, keys: list[bytes], ttl_ms: int | None = 3_600_000) -> None:
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.set(k, b"v:" + k, px=ttl_ms)
    pipe.execute()


def _keys(r: redis.Redis) -> set[bytes]:
    return set(r.scan_iter(count=1000))


def test_flush_never_removes_nested_namespace(redis_client: redis.Redis, policy: Policy) -> None:
    products = [f"shop:product:{i}".encode() for i in range(50)]
    reviews = [f"shop:product:reviews:{i}".encode() for i in range(30)]
    others = [b"shop:cart:1", b"shop:price:9", b"other:product:1", b"shop:product:1:extra"]
    _load(redis_client, products + reviews + others)
    targets = flush.select_targets(policy, namespaces=["product"])
    result = flush.flush_namespaces(redis_client, policy, targets, batch=7)
    assert _keys(redis_client) - {flush.audit_key(policy).encode()} == set(reviews + others)
    assert (result.matched, result.changed, result.skipped) == (50, 50, 0)
    assert result.batches >= 8  # 50 keys in batches of at most 7


def test_keys_owned_by_an_earlier_namespace_are_never_removed(
        redis_client: redis.Redis, policy: Policy) -> None:
    # "anything" ({kind}:{id}) also matches shop:cart:1 and shop:price:2, which belong
    # to cart and price (earlier in the policy); only its own keys go
    own = [b"shop:misc:1", b"shop:misc:2"]
    theirs = [b"shop:cart:1", b"shop:price:2"]
    _load(redis_client, own + theirs)
    redis_client.hset(b"shop:cachectl:counters", "x", 1)  # cachectl's own key: {kind}:{id} too
    result = flush.flush_namespaces(redis_client, policy,
                                   flush.select_targets(policy, namespaces=["anything"]))
    left = _keys(redis_client)
    assert set(theirs) <= left and b"shop:cachectl:counters" in left
    assert not set(own) & left
    assert result.targets[0].other_namespace == 3
    assert result.changed == 2


def test_tag_flushes_every_tagged_namespace(redis_client: redis.Redis, policy: Policy) -> None:
    _load(redis_client, [b"shop:product:1", b"shop:product:reviews:1", b"shop:price:1",
                         b"shop:cart:1"])
    targets = flush.select_targets(policy, tags=["catalog"])
    assert [t.name for t in targets] == ["product", "product_reviews", "price"]
    result = flush.flush_namespaces(redis_client, policy, targets)
    assert _keys(redis_client) == {b"shop:cart:1", flush.audit_key(policy).encode()}
    assert result.what == "tag catalog (product, product_reviews, price)"


def test_key_target_removes_the_one_rendered_key(redis_client: redis.Redis, policy: Policy) -> None:
    _load(redis_client, [b"shop:product:42", b"shop:product:421", b"shop:product:reviews:42"])
    targets = flush.select_targets(policy, key="product", key_params=["id=42"])
    result = flush.flush_namespaces(redis_client, policy, targets)
    assert _keys(redis_client) >= {b"shop:product:421", b"shop:product:reviews:42"}
    assert not redis_client.exists(b"shop:product:42")
    assert (result.matched, result.changed) == (1, 1)
    again = flush.flush_namespaces(redis_client, policy, targets)
    assert (again.matched, again.changed, again.skipped) == (0, 0, 0)


def test_soft_flush_moves_keys_into_the_stale_band(redis_client: redis.Redis,
                                                   policy: Policy) -> None:
    ns = policy.namespace("price")
    band = soft_expire_pttl_ms(ns)
    assert band == 30 * 60_000  # grace = max(stale, stale_if_error)
    fresh = [f"shop:price:{i}".encode() for i in range(20)]
    _load(redis_client, fresh, ttl_ms=band + 5 * 60_000)
    _load(redis_client, [b"shop:price:short"], ttl_ms=1000)  # already lower: left alone
    _load(redis_client, [b"shop:price:forever"], ttl_ms=None)  # no TTL: gets the band
    _load(redis_client, [b"shop:cart:1"], ttl_ms=None)
    result = flush.flush_namespaces(redis_client, policy,
                                   flush.select_targets(policy, namespaces=["price"], soft=True),
                                   soft=True)
    for k in [*fresh, b"shop:price:forever"]:
        assert 0 < redis_client.pttl(k) <= band
        assert redis_client.get(k) == b"v:" + k
    assert 0 < redis_client.pttl(b"shop:price:short") <= 1000
    assert redis_client.pttl(b"shop:cart:1") == -1
    t = result.targets[0]
    assert (t.matched, t.changed, t.no_ttl, t.already_stale) == (22, 21, 1, 1)


def test_soft_flush_refused_without_a_stale_window(policy: Policy) -> None:
    with pytest.raises(UsageError, match="no stale window"):
        flush.select_targets(policy, namespaces=["cart"], soft=True)
    with pytest.raises(UsageError, match="no stale window"):
        flush.check_soft(policy, [flush.FlushTarget("namespace", "cart", "namespace cart")])


def test_pattern_never_touches_cachectl_keys(redis_client: redis.Redis, policy: Policy) -> None:
    _load(redis_client, [b"shop:tmp:1", b"shop:tmp:2", b"shop:product:1"])
    redis_client.hset(b"shop:cachectl:stats:1", "hits", 1)
    # select_targets refuses shop:* (every key of the policy); the primitive must hold anyway
    targets = [flush.FlushTarget("pattern", "shop:*", "pattern shop:*")]
    result = flush.flush_namespaces(redis_client, policy, targets)
    assert _keys(redis_client) == {b"shop:cachectl:stats:1", flush.audit_key(policy).encode()}
    assert result.changed == 3
    assert result.targets[0].other_namespace == 1


def test_dry_run_touches_nothing_and_writes_no_audit(redis_client: redis.Redis,
                                                     policy: Policy) -> None:
    keys = [f"shop:product:{i}".encode() for i in range(12)]
    _load(redis_client, keys)
    result = flush.flush_namespaces(redis_client, policy,
                                   flush.select_targets(policy, namespaces=["product"]),
                                   dry_run=True, examples=3)
    assert _keys(redis_client) == set(keys)
    assert result.matched == 12 and result.changed == 0 and result.audit_id is None
    assert len(result.targets[0].examples) == 3


def test_audit_entry_records_who_what_and_how_many(redis_client: redis.Redis,
                                                   policy: Policy) -> None:
    _load(redis_client, [b"shop:product:1", b"shop:product:2"])
    result = flush.flush_namespaces(
        redis_client, policy, flush.select_targets(policy, namespaces=["product"]),
        actor=flush.Actor("alice", "ops-1"), wall_clock=lambda: 1_800_000_000.0)
    entries = flush.read_history(redis_client, policy, limit=5)
    assert len(entries) == 1
    e = entries[0]
    assert e.id == result.audit_id
    assert (e.user, e.host, e.what, e.mode, e.matched, e.changed) == (
        "alice", "ops-1", "namespace product", "hard", 2, 2)
    assert e.time == "2027-01-15T08:00:00+00:00"
    info = redis_client.xinfo_stream(flush.audit_key(policy))
    assert info["length"] == 1
    assert flush.audit_key(policy) == "shop:cachectl:audit"


def test_audit_stream_is_capped(redis_client: redis.Redis, policy: Policy,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "AUDIT_MAXLEN", 5)  # append_audit reads it there
    for i in range(300):
        _load(redis_client, [f"shop:product:{i}".encode()])
        flush.flush_namespaces(redis_client, policy,
                              flush.select_targets(policy, namespaces=["product"]))
    # MAXLEN ~ trims whole macro nodes (100 entries by default), never below the cap
    assert 5 <= redis_client.xlen(flush.audit_key(policy)) < 300


def test_interrupt_stops_after_the_batch_and_a_rerun_finishes(redis_client: redis.Redis,
                                                               policy: Policy) -> None:
    keys = [f"shop:product:{i}".encode() for i in range(100)]
    _load(redis_client, [*keys, b"shop:cart:1"])
    targets = flush.select_targets(policy, namespaces=["product"])
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    with pytest.raises(InterruptedWork) as info:
        flush.flush_namespaces(redis_client, policy, targets, batch=10,
                              should_stop=stop_after_three)
    partial = info.value.partial
    assert isinstance(partial, flush.FlushResult)
    left = len([k for k in keys if redis_client.exists(k)])
    assert partial.interrupted and 0 < partial.changed <= 30  # three batches of at most 10
    assert partial.changed == 100 - left  # exactly what was done
    assert flush.read_history(redis_client, policy)[0].interrupted
    rest = flush.flush_namespaces(redis_client, policy, targets)
    assert rest.changed == left
    assert _keys(redis_client) == {b"shop:cart:1", flush.audit_key(policy).encode()}


def test_concurrent_writers_during_a_flush(redis_server: object, redis_url: str,
                                           policy: Policy) -> None:
    r = redis.Redis.from_url(redis_url)
    before = [f"shop:product:{i}".encode() for i in range(10_000)]
    _load(r, before)
    written_same: list[bytes] = []
    written_other: list[bytes] = []
    stop = threading.Event()

    def writer() -> None:
        w = redis.Redis.from_url(redis_url)
        i = 0
        while not stop.is_set():
            same = f"shop:product:{i % 10_000}".encode()  # rewrites keys being flushed
            other = f"shop:product:reviews:w{i}".encode()
            w.set(same, b"new", px=3_600_000)
            w.set(other, b"new", px=3_600_000)
            written_same.append(same)
            written_other.append(other)
            i += 1
        w.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = flush.flush_namespaces(r, policy, flush.select_targets(policy, namespaces=["product"]),
                                       batch=200)
    finally:
        stop.set()
        thread.join()
    assert written_other, "the writer never ran"
    assert all(r.exists(k) for k in written_other)  # another namespace: untouched
    rewritten = set(written_same)
    assert not any(r.exists(k) for k in before if k not in rewritten)
    t = result.targets[0]
    assert t.matched == t.changed + t.vanished
    assert t.changed >= len(set(before) - rewritten)


def test_plan_counts_exactly_then_estimates_for_huge_keyspaces(redis_client: redis.Redis,
                                                               policy: Policy) -> None:
    pipe = redis_client.pipeline(transaction=False)
    for i in range(6000):
        pipe.set(f"shop:product:{i}", b"x", px=600_000)
        pipe.set(f"shop:cart:{i}", b"x", px=600_000)
        pipe.set(f"shop:cart:x{i}", b"x", px=600_000)
    pipe.execute()
    targets = flush.select_targets(policy, namespaces=["product"])
    exact = flush.plan_flush(redis_client, policy, targets)
    assert (exact.keys, exact.estimated, exact.dbsize) == (6000, False, 18000)
    assert len(exact.targets[0].examples) == flush.EXAMPLES
    est = flush.plan_flush(redis_client, policy, targets, exact_limit=1000, sample_keys=3000)
    assert est.estimated and est.sampled_keys >= 3000
    assert 4000 < est.keys < 8000  # a third of 18000, from a sample of 3000
    assert all(k.startswith(b"shop:product:") for k in est.targets[0].examples)


def test_rate_caps_keys_per_second(redis_client: redis.Redis, policy: Policy) -> None:
    _load(redis_client, [f"shop:product:{i}".encode() for i in range(600)])
    started = time.monotonic()
    result = flush.flush_namespaces(redis_client, policy,
                                   flush.select_targets(policy, namespaces=["product"]),
                                   rate=1000, batch=100)
    elapsed = time.monotonic() - started
    assert result.changed == 600
    assert elapsed >= 0.45  # 600 keys at 1000/s, with a first burst of one batch


def test_latency_governor_backs_off_when_the_server_is_slow(
        redis_client: redis.Redis, policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    _load(redis_client, [f"shop:product:{i}".encode() for i in range(400)])
    real_ping = redis_client.ping
    pings = {"n": 0}

    def ping() -> object:  # the server answers fast at first, then slowly (another load)
        pings["n"] += 1
        # 200 ms: well past 4x the baseline even when a loaded machine makes a fast ping 20 ms
        time.sleep(0.0 if pings["n"] <= 2 else 0.2)
        return real_ping()

    monkeypatch.setattr(redis_client, "ping", ping)
    slept: list[float] = []
    result = flush.flush_namespaces(redis_client, policy,
                                   flush.select_targets(policy, namespaces=["product"]),
                                   batch=100, sleep=slept.append, latency_check_s=0)
    assert result.changed == 400
    assert result.backoffs >= 1 and slept and all(0 < s <= 0.1 for s in slept)
    assert result.max_ping_ms >= 50
    assert result.batches > 4  # the batch shrank below 100


def test_unlink_keys_groups_by_slot_when_the_node_refuses_crossslot(
        redis_client: redis.Redis) -> None:
    class CrossSlotNode:
        """A cluster node's reply to multi-slot commands, over a real server."""

        def __init__(self, inner: redis.Redis) -> None:
            self.inner = inner

        def unlink(self, *keys: bytes) -> int:
            from redis.crc import key_slot
            if len({key_slot(k) for k in keys}) > 1:
                raise redis.ResponseError(
                    "CROSSSLOT Keys in request don't hash to the same slot")
            return int(self.inner.unlink(*keys))

        def pipeline(self, transaction: bool = False) -> object:
            node = self

            class Pipe:
                def __init__(self) -> None:
                    self.calls: list[tuple[bytes, ...]] = []

                def unlink(self, *keys: bytes) -> None:
                    self.calls.append(keys)

                def execute(self) -> list[int]:
                    return [node.unlink(*keys) for keys in self.calls]

            return Pipe()

    keys = [b"a", b"b", b"{t}1", b"{t}2", b"c"]
    _load(redis_client, keys[:-1])
    assert flush.unlink_keys(CrossSlotNode(redis_client), keys) == 4
    assert _keys(redis_client) == set()


def test_pexpire_lt_packed_lowers_only_longer_ttls_and_counts_them(
        redis_client: redis.Redis) -> None:
    from cachectl.flush.primitives import pexpire_lt_packed

    _load(redis_client, [b"long:1", b"long:2"], 7_200_000)
    _load(redis_client, [b"short:1"], 60_000)
    _load(redis_client, [b"forever:1"], None)
    keys = [b"long:1", b"short:1", b"forever:1", b"missing:1", b"long:2"]
    assert pexpire_lt_packed(redis_client, keys, 3_600_000) == 3
    pttl = {k: redis_client.pttl(k) for k in keys}
    assert 3_590_000 < pttl[b"long:1"] <= 3_600_000 and 3_590_000 < pttl[b"long:2"] <= 3_600_000
    assert 0 < pttl[b"forever:1"] <= 3_600_000  # no expiry counts as an infinite TTL
    assert 50_000 < pttl[b"short:1"] <= 60_000 and pttl[b"missing:1"] == -2
    # thousands of replies arrive over several reads, counted in bulk
    many = [b"bulk:%d" % i for i in range(5000)]
    _load(redis_client, many, 7_200_000)
    assert pexpire_lt_packed(redis_client, many + many[:10], 3_600_000) == 5000
    assert pexpire_lt_packed(redis_client, [], 3_600_000) == 0


def test_pexpire_lt_packed_raises_a_refusal_after_reading_every_reply(
        redis_client: redis.Redis, redis_url: str) -> None:
    from cachectl.flush.primitives import pexpire_lt_packed

    _load(redis_client, [b"mine:1", b"mine:2", b"theirs:1"], 7_200_000)
    redis_client.execute_command("ACL", "SETUSER", "clamp_some", "on", ">clamp-secret",
                                 "~mine:*", "resetchannels", "-@all", "+pexpire", "+ping",
                                 "+hello", "+client|setname")
    try:
        user = redis.Redis.from_url(redis_url, username="clamp_some", password="clamp-secret")
        with pytest.raises(redis.exceptions.NoPermissionError):
            pexpire_lt_packed(user, [b"mine:1", b"theirs:1", b"mine:2"], 3_600_000)
        # the keys it may touch were clamped, and the connection is still in step
        assert 0 < redis_client.pttl(b"mine:2") <= 3_600_000
        assert redis_client.pttl(b"theirs:1") > 3_600_000
        assert pexpire_lt_packed(user, [b"mine:1"], 1_000_000) == 1
        assert user.ping() is True
        user.close()
    finally:
        redis_client.execute_command("ACL", "DELUSER", "clamp_some")


def test_clamp_keys_pipelines_where_there_is_no_socket() -> None:
    import fakeredis

    from cachectl.flush.primitives import pexpire_lt_packed

    fake = fakeredis.FakeRedis()
    fake.set(b"k", b"v", px=7_200_000)
    assert pexpire_lt_packed(fake, [b"k"], 3_600_000) is None
    counts = flush.clamp_keys(fake, [b"k", b"gone"], 3_600_000, lt_supported=True)
    assert counts.softened == 1 and counts.already_stale == 1
    assert 0 < int(fake.pttl(b"k")) <= 3_600_000
