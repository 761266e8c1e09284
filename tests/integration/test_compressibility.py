"""inspect --compression's estimate against what warming compressed really saves.

The proof the issue asks for: on the demo catalogue and on a generated corpus, the bytes
the estimate says a namespace would save are within 5 % of the bytes it saved (the sum of
MEMORY USAGE over its keys, warmed plain and then warmed compressed, real redis-server).
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import redis

from cachectl.compressibility import estimate_compression, string_value_bytes
from cachectl.connection import ConnectionSettings
from cachectl.policy import load_policy
from cachectl.policy.model import Policy
from cachectl.warm import warm_namespaces

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 0.05


def memory_of(client: redis.Redis, policy: Policy, name: str) -> int:
    """The sum of MEMORY USAGE over the namespace's keys."""
    keys = list(client.scan_iter(match=policy.namespace(name).template.glob, count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(pipe.execute())


def with_settings(policy: Policy, settings: dict[str, object]) -> Policy:
    namespaces = {name: dataclasses.replace(ns, compress=settings.get(name))
                  for name, ns in policy.namespaces.items()}
    return dataclasses.replace(policy, namespaces=namespaces)


def check_estimates(client: redis.Redis, url: str, policy: Policy, sample: int,
                    rng: random.Random) -> dict[str, tuple[int, int, int]]:
    """Warm plain, estimate, warm again with each recommended setting; per recommended
    namespace: (estimated saving, its margin, the saving measured)."""
    client.flushdb()
    plain = with_settings(policy, {})
    assert warm_namespaces(client, plain).ok
    names = [ns.name for ns in plain if ns.warm is not None]
    before = {name: memory_of(client, plain, name) for name in names}
    report = estimate_compression(client, plain, ConnectionSettings(url=url), sample=sample,
                                  namespaces=names, rng=rng)
    chosen = {n.namespace: n.recommended for n in report.namespaces if n.recommended}
    assert chosen, [n.reason for n in report.namespaces]
    client.flushdb()
    compressed = with_settings(policy, {name: c.setting for name, c in chosen.items()})
    assert warm_namespaces(client, compressed).ok
    out = {}
    for name, candidate in chosen.items():
        saved = before[name] - memory_of(client, compressed, name)
        out[name] = (candidate.saved_bytes, candidate.saved_margin_bytes, saved)
    return out


def test_the_memory_model_is_what_memory_usage_reports(redis_client: redis.Redis) -> None:
    rng = random.Random(7)
    # up to 32 KiB: a longer argument may keep the spare room of Redis's query buffer
    sizes = [*range(0, 400), *(rng.randrange(400, 32 * 1024) for _ in range(300))]
    redis_client.set("m", b"")
    offset = redis_client.memory_usage("m") - string_value_bytes(0)
    for n in sizes:
        redis_client.set("m", b"x" * n)
        assert redis_client.memory_usage("m") - offset == string_value_bytes(n), n


def test_estimate_on_the_demo_catalogue_is_within_5_percent(
        redis_client: redis.Redis, redis_url: str) -> None:
    policy = load_policy(REPO / "policies" / "ecommerce.yaml", env={})
    found = check_estimates(redis_client, redis_url, policy, 1000, random.Random(1))
    assert "product" in found
    for name, (estimate, _, saved) in found.items():
        assert saved > 0 and abs(estimate - saved) <= TOLERANCE * saved, (name, estimate, saved)


def corpus(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    words = ["blue", "cotton", "shirt", "soft", "slim", "fit", "organic", "washed", "linen",
             "navy", "classic", "collar", "button", "sleeve", "summer", "breathable"]
    with path.open("w") as out:
        for i in range(rows):
            body = " ".join(rng.choice(words) for _ in range(rng.randrange(20, 400)))
            tags = [rng.choice(words) for _ in range(rng.randrange(0, 12))]
            row = {"id": i, "body": body, "tags": tags, "score": rng.random()}
            out.write(json.dumps(row) + "\n")


def test_estimate_on_a_generated_corpus_is_within_5_percent(
        redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    corpus(tmp_path / "docs.jsonl", 20_000, seed=3)
    (tmp_path / "cachectl.yaml").write_text(
        "version: 1\nredis: {key_prefix: g}\ndefaults: {ttl: 10m}\nnamespaces:\n"
        "  doc: {key: 'doc:{id}', warm: {source: {type: jsonl, path: docs.jsonl}}}\n")
    policy = load_policy(tmp_path / "cachectl.yaml", env={})
    found = check_estimates(redis_client, redis_url, policy, 2000, random.Random(2))
    estimate, margin, saved = found["doc"]
    assert 0 < margin < TOLERANCE * saved  # a sample of 2,000 of 20,000 keys
    assert abs(estimate - saved) <= TOLERANCE * saved, (estimate, margin, saved)


@pytest.mark.parametrize("seed", [11])
def test_small_values_are_not_recommended(redis_client: redis.Redis, redis_url: str,
                                          tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    redis_client.flushdb()
    for i in range(500):
        redis_client.set(f"s:tiny:{i}", json.dumps({"n": rng.randrange(1000)}), px=600_000)
    (tmp_path / "p.yaml").write_text("version: 1\ndefaults: {ttl: 10m}\nnamespaces:\n"
                                     "  tiny: {key: 's:tiny:{id}'}\n")
    policy = load_policy(tmp_path / "p.yaml", env={})
    report = estimate_compression(redis_client, policy, ConnectionSettings(url=redis_url))
    [tiny] = report.namespaces
    assert tiny.keys == tiny.sampled == 500
    assert tiny.recommended is None and "leave it plain" in tiny.reason
    assert all(c.saved_margin_bytes == 0 for c in tiny.candidates)  # every key was read


def test_audit_warns_about_large_compressible_values_stored_plain(
        redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    redis_client.flushdb()
    corpus(tmp_path / "docs.jsonl", 400, seed=5)
    text = ("version: 1\nredis: {key_prefix: a}\ndefaults: {ttl: 10m}\nnamespaces:\n"
            "  doc: {key: 'doc:{id}', warm: {source: {type: jsonl, path: docs.jsonl}}%s}\n"
            "  tiny: {key: 'tiny:{id}'}\n")
    (tmp_path / "cachectl.yaml").write_text(text % "")
    policy = load_policy(tmp_path / "cachectl.yaml", env={})
    assert warm_namespaces(redis_client, policy).written == 400
    for i in range(50):
        redis_client.set(f"a:tiny:{i}", str(i), px=60_000)
    from cachectl.audit import Severity, audit_keyspace

    settings = ConnectionSettings(url=redis_url)
    report = audit_keyspace(redis_client, policy, settings)
    [finding] = [f for f in report.findings if f.code == "compressible"]
    assert finding.severity is Severity.WARNING and finding.namespace == "doc"
    assert finding.count == 400 and finding.limit is not None and finding.limit > 0
    assert "would save" in finding.message and "compress: {codec:" in (finding.hint or "")
    assert report.ok  # a warning, not an error
    (tmp_path / "cachectl.yaml").write_text(text % ", compress: {codec: zlib}")
    compressed = load_policy(tmp_path / "cachectl.yaml", env={})
    assert not [f for f in audit_keyspace(redis_client, compressed, settings).findings
                if f.code == "compressible"]
