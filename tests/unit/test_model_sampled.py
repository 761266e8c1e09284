"""SHARDS sampling at 1 % against exact, on 3M requests over 500k keys: MAE of each curve."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from cachectl.model import ModelOptions, Trace, model_trace
from cachectl.policy import Policy, load_policy

REQUESTS = 3_000_000
KEYS = 500_000


def zipf_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trace, Policy]:
    rng = np.random.default_rng(7)
    ranks = np.arange(1, KEYS + 1, dtype=np.float64)
    p = ranks ** -0.9
    p /= p.sum()
    ids = rng.choice(KEYS, size=REQUESTS, p=p)
    hashes = rng.integers(0, 2**63, size=KEYS, dtype=np.int64).astype(np.uint64)
    sizes = rng.integers(100, 4000, size=KEYS)
    half = ids % 2
    trace = Trace(time_s=np.cumsum(rng.exponential(1 / 1000, size=REQUESTS)),
                  key_hash=hashes[ids], size=sizes[ids].astype(np.int64), ns=half.astype(np.int32),
                  namespaces=("product", "price"))
    path = tmp_path_factory.mktemp("policy") / "cachectl.yaml"
    path.write_text("version: 1\nnamespaces:\n"
                    '  product: {key: "product:{id}", ttl: 10m, stale: 1m, jitter: 10%}\n'
                    '  price: {key: "price:{sku}", ttl: 2m}\n')
    return trace, load_policy(path)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes on a loaded 2-core machine
def test_one_percent_sample_is_within_a_point_of_exact(tmp_path_factory: pytest.TempPathFactory) -> None:
    trace, policy = zipf_trace(tmp_path_factory)
    footprint = KEYS * (2050 + 225)
    # from the smallest size a 1 % miniature cache holds 100 keys at (the sampled curve's start)
    sizes = tuple(int(footprint * f) for f in (0.07, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0))
    ttls = (1.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
    # Redis's eviction is simulated at the compared sizes only (each size is a pass of its own)
    exact = model_trace(trace, policy, ModelOptions(ttls_s=ttls, memory_bytes=sizes, exact=True,
                                                     redis_points=0))
    sampled = model_trace(trace, policy, ModelOptions(ttls_s=ttls, memory_bytes=sizes, sample_rate=0.01,
                                                       redis_points=0))
    assert exact.sample_rate == 1.0 and sampled.sample_rate == 0.01 and sampled.sampled
    for e, s in zip(exact.namespaces, sampled.namespaces, strict=True):
        assert 500 < s.sampled_requests < 0.02 * e.requests
        ttl_err = np.mean([abs(a.hit_rate - b.hit_rate)
                           for a, b in zip(e.ttl_curve, s.ttl_curve, strict=True)])
        at_e = {p.bytes: p for p in e.memory_curve}
        at_s = {p.bytes: p for p in s.memory_curve}
        lru_err = np.mean([abs(at_e[b].hit_rate - at_s[b].hit_rate) for b in sizes])
        byte_err = np.mean([abs(at_e[b].byte_hit_rate - at_s[b].byte_hit_rate) for b in sizes])
        redis_err = np.mean([abs(at_e[b].redis_lru_hit_rate - at_s[b].redis_lru_hit_rate)  # type: ignore[operator]
                             for b in sizes])
        print(f"{e.namespace}: MAE ttl {ttl_err:.4f} lru {lru_err:.4f} bytes {byte_err:.4f} "
              f"redis-lru {redis_err:.4f}")
        assert ttl_err == 0  # the TTL curve is computed over every event, sampled or not
        assert lru_err <= 0.01
        assert redis_err <= 0.01
        # bytes: a hot key left out takes its bytes with it; measured 0.0030 and 0.0110 here
        assert byte_err <= 0.015
        # the curves are not flat: the error is small against a real spread
        assert e.memory_curve[-1].hit_rate - at_e[sizes[0]].hit_rate > 0.15
