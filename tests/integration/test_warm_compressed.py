"""warm with compress: on a real redis-server: frames for large values, plain for small
ones, every codec, both the bulk (jsonl) and the row paths, max_value_bytes on the stored
size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from cachectl import compression
from cachectl.compression import MAGIC
from cachectl.policy import load_policy
from cachectl.policy.model import Policy
from cachectl.warm import warm_namespaces


def policy_for(folder: Path, namespaces: str) -> Policy:
    path = folder / "cachectl.yaml"
    path.write_text("version: 1\nredis: {key_prefix: z}\ndefaults: {ttl: 10m}\n"
                    "namespaces:\n" + namespaces)
    return load_policy(path, env={})


def rows(n: int) -> list[dict[str, object]]:
    # every 4th row small (under min_bytes), the others a long compressible description
    return [{"id": i, "name": f"item {i}",
             "text": "" if i % 4 == 0 else "a soft cotton shirt in blue " * (10 + i % 7)}
            for i in range(n)]


@pytest.mark.parametrize("codec", compression.POLICY_CODECS)
@pytest.mark.parametrize("source", ["jsonl", "csv"])
def test_warm_stores_frames_over_min_bytes_and_plain_under(
        redis_client: redis.Redis, tmp_path: Path, codec: str, source: str) -> None:
    data = rows(300)
    if source == "jsonl":  # the bulk path
        (tmp_path / "seed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    else:  # the row path
        (tmp_path / "seed.csv").write_text("id,name,text\n" + "".join(
            f"{r['id']},{r['name']},{r['text']}\n" for r in data))
    policy = policy_for(tmp_path, f"""  item:
    key: "item:{{id}}"
    compress: {{codec: {codec}, min_bytes: 200B}}
    warm: {{source: {{type: {source}, path: seed.{source}}}}}
""")
    report = warm_namespaces(redis_client, policy)
    assert report.written == 300
    framed = 0
    for r in data:
        stored = redis_client.get(f"z:item:{r['id']}")
        assert stored is not None
        plain = compression.decode(stored)
        row = json.loads(plain)
        assert str(row["id"]) == str(r["id"]) and row["text"] == r["text"]
        if len(plain) >= 200:
            assert stored.startswith(MAGIC) and len(stored) < len(plain) / 2
            assert compression.inspect_frame(stored).codec == codec
            framed += 1
        else:
            assert stored == plain
    assert framed == 225


def test_max_value_bytes_is_checked_against_the_stored_size(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    big = {"id": 1, "text": "x" * 5000}  # 5 KiB plain, a few dozen bytes compressed
    (tmp_path / "seed.jsonl").write_text(json.dumps(big) + "\n")
    plain = policy_for(tmp_path, """  item:
    key: "item:{id}"
    max_value_bytes: 1KiB
    warm: {source: {type: jsonl, path: seed.jsonl}}
""")
    assert warm_namespaces(redis_client, plain).rejected == 1
    compressed = policy_for(tmp_path, """  item:
    key: "item:{id}"
    max_value_bytes: 1KiB
    compress: {codec: zlib}
    warm: {source: {type: jsonl, path: seed.jsonl}}
""")
    assert warm_namespaces(redis_client, compressed).written == 1
    stored = redis_client.get("z:item:1")
    assert stored is not None and len(stored) < 1024
    assert json.loads(compression.decode(stored)) == big


@pytest.mark.parametrize("use_lua", [True, False])
def test_the_summary_shows_the_share_of_compressed_values(
        redis_client: redis.Redis, redis_url: str, tmp_path: Path, use_lua: bool) -> None:
    from cachectl.connection import ConnectionSettings
    from cachectl.inspect import summarize

    redis_client.flushdb()
    (tmp_path / "seed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(200)))
    policy = policy_for(tmp_path, """  item:
    key: "item:{id}"
    compress: {codec: zlib, min_bytes: 200B}
    warm: {source: {type: jsonl, path: seed.jsonl}}
  other: {key: "other:{id}"}
""")
    assert warm_namespaces(redis_client, policy).written == 200
    redis_client.set("z:other:1", b"x", px=60_000)
    summary = summarize(redis_client, policy, ConnectionSettings(url=redis_url), use_lua=use_lua)
    by_name = {r.namespace: r for r in summary.namespaces}
    assert by_name["item"].compressed_share == 150 / 200  # every 4th row is under min_bytes
    assert by_name["other"].compressed_share is None  # it does not compress: not read
