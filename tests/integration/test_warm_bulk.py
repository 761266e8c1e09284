"""The bulk JSONL path (cachectl.warm.bulk) writes exactly what the row-at-a-time path writes.

Each test warms the same awkward file twice into a real redis-server with the same TTL
draws: once as cachectl does (bulk chunks, handing odd chunks back row by row) and once
with the bulk path switched off; keys, values, TTLs, counts and reported problems must match.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from cachectl.policy import load_policy
from cachectl.policy.model import Policy
from cachectl.warm import bulk, codec, core, loop, warm_namespaces
from cachectl.warm.model import WarmReport

pytestmark = pytest.mark.skipif(codec.fast_row is None, reason="orjson (the fast extra) is absent")


def write_policy(folder: Path, namespace: str) -> Policy:
    path = folder / "cachectl.yaml"
    path.write_text("version: 1\nredis: {key_prefix: t}\ndefaults: {ttl: 10m, jitter: 10%}\n"
                    "namespaces:\n" + namespace)
    return load_policy(path, env={})


def awkward_lines(count: int) -> list[bytes]:
    """Mostly plain rows, with every kind of row the bulk path must hand back sprinkled in."""
    rng = random.Random(3)
    odd: list[bytes] = [
        b"",  # blank: skipped
        b"   ",
        b"{not json",
        b"\xff\xfe not utf-8",
        b"[1, 2]",  # not an object
        b'{"name": "no id"}',  # missing key field
        b'{"id": "has:colon", "v": 1}',  # rendered by the template (the fast key refuses it)
        b'{"id": "", "v": 1}',  # empty key part
        b'{"id": true, "v": 1}',  # a bool is not an int
        b'{"id": 7, "dup": "the first row with id 7 came earlier"}',  # duplicate key
        b'{"id": 900001, "tiny": 1e-7, "small": 0.00001, "big": 1e16}',  # floats orjson writes
        b'{"id": 900002, "text": "0e-5 1e+9 .0000 as text"}',  # differently, and look-alikes
        b'{"id": 900003, "huge": 123456789012345678901234567890}',
        b'{"id": 900004, "blob": "' + b"x" * 3000 + b'"}',  # over max_value_bytes
        b'{"id": 900005, "nan": NaN}',
        b'{ "id" : 900006 , "spaced" : [ 1 , 2.50 ] }',
        b'{"id": 900007, "esc": "\\u00e9\\/\\ud83d\\ude00"}',
        b'{"id": 900008, "lone": "\\ud800"}',  # cannot be stored as UTF-8
        b'{"id": "s-1", "v": "a string key"}',
        b'{"id": 900009, "v": 1}\r',  # CRLF line end
        # cachectl.warm.seen: a text id is the int id's key, out-of-order ids, 64+ bit ids
        b'{"id": "7", "v": "the key of int id 7 again"}',  # duplicate key
        b'{"id": "0012", "v": "leading zeros: not id 12\'s key"}',
        b'{"id": -3, "v": "a negative id"}',
        b'{"id": 999999999, "v": "far above: every later id comes out of order"}',
        b'{"id": 18446744073709551616, "v": "beyond 64 bits"}',
        b'{"id": 18446744073709551616, "v": "beyond 64 bits, again"}',  # duplicate key
    ]
    lines = []
    for n in range(count):
        if n % 97 == 5:
            lines.append(odd[(n // 97) % len(odd)])
        elif n % 211 == 7:
            lines.append(json.dumps({"id": f"k{n}", "v": n}).encode())  # string keys
        else:
            row = {"id": n, "name": f"caf\u00e9 {n}", "price": round(rng.uniform(1, 99), 2),
                   "tags": ["a", "b"][: n % 3], "ok": n % 2 == 0}
            lines.append(json.dumps(row, ensure_ascii=n % 5 == 0).encode())
    return lines


def keyspace(client: redis.Redis) -> dict[bytes, tuple[bytes | None, int]]:
    keys = sorted(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
        pipe.pttl(key)
    got = pipe.execute()
    return {key: (got[2 * i], got[2 * i + 1]) for i, key in enumerate(keys)}


def comparable(report: WarmReport) -> dict[str, Any]:
    data = report.to_json()
    data.pop("seconds")
    for ns in data["namespaces"]:
        ns.pop("seconds")
        ns.pop("keys_per_s")
    return data


def warm_both(client: redis.Redis, policy: Policy, monkeypatch: pytest.MonkeyPatch,
              **options: Any) -> tuple[tuple[WarmReport, dict[bytes, Any]], ...]:
    """(report, keyspace) of the bulk path, then of the row path, from an empty server each."""
    chunks = {"bulk": 0, "rows": 0}
    real_row_by_row = bulk._lines_one_by_one

    def counting(*args: Any) -> None:
        chunks["rows"] += 1
        real_row_by_row(*args)

    out = []
    for use_bulk in (True, False):
        client.flushall()
        with monkeypatch.context() as patch:
            patch.setattr(bulk, "_lines_one_by_one", counting)
            if not use_bulk:
                patch.setattr(core, "bulk_reader", lambda warm: None)
            started = time.monotonic()
            report = warm_namespaces(client, policy, rng=random.Random(11), **options)
            chunks["bulk" if use_bulk else "after"] = chunks["rows"]
        out.append((report, keyspace(client), time.monotonic() - started))
    # the bulk path was really taken: it handed some chunks back, and kept the others
    assert 0 < chunks["bulk"] == chunks["after"] < out[0][0].namespaces[0].rows // 64
    (bulk_report, bulk_keys, bulk_s), (row_report, row_keys, row_s) = out
    assert comparable(bulk_report) == comparable(row_report)
    assert bulk_keys.keys() == row_keys.keys()
    slack_ms = int((bulk_s + row_s) * 1000) + 1000
    for key, (value, pttl) in bulk_keys.items():
        assert value == row_keys[key][0], key
        assert abs(pttl - row_keys[key][1]) <= slack_ms, key  # the same draw for the same row
    return (bulk_report, bulk_keys), (row_report, row_keys)


@pytest.mark.parametrize("batch_size", [1000, 37])
def test_bulk_and_row_paths_write_the_same_keys_values_ttls_and_report(
        tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
        batch_size: int) -> None:
    lines = awkward_lines(3000)
    (tmp_path / "p.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines))  # BOM, no last \n
    policy = write_policy(tmp_path, """\
  product:
    key: "product:{id}"
    stale: 1m
    max_value_bytes: 2kb
    warm: {source: {type: jsonl, path: p.jsonl}}
""")
    (report, keys), _ = warm_both(redis_client, policy, monkeypatch, batch_size=batch_size)
    ns = report.namespaces[0]
    assert ns.rejected > 12 and ns.written > 2900 and ns.written == len(keys)
    reasons = set(ns.errors_by_reason)
    assert {"unreadable row", "missing field", "duplicate key", "too large", "bad value",
            "bad key value"} <= reasons, reasons
    assert ns.problems[0].locator == "p.jsonl:200"  # lines 6 and 103 are blank: skipped
    # the stored bytes are json.dumps of the row (the stdlib's float spelling)
    assert keys[b"t:product:900001"][0] == (
        b'{"id":900001,"tiny":1e-07,"small":1e-05,"big":1e+16}')


def test_bulk_only_missing_and_dry_run_match_the_row_path(
        tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = awkward_lines(1500)
    (tmp_path / "p.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    policy = write_policy(tmp_path, """\
  product: {key: "item:{id}:v1", ttl: 5m, jitter: 0, warm: {source: {type: jsonl, path: p.jsonl}}}
""")
    (report, keys), _ = warm_both(redis_client, policy, monkeypatch, only_missing=True)
    assert report.namespaces[0].written == len(keys) > 1400
    assert all(pttl > 290_000 for _, pttl in keys.values())  # no jitter: one TTL (5m)
    dry = [comparable(warm_namespaces(None, policy, dry_run=True))]
    with monkeypatch.context() as patch:
        patch.setattr(core, "bulk_reader", lambda warm: None)
        dry.append(comparable(warm_namespaces(None, policy, dry_run=True)))
    assert dry[0] == dry[1] and dry[0]["written"] == len(keys)


def test_existing_keys_are_skipped_the_same_way(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(500)))
    policy = write_policy(tmp_path, """\
  product: {key: "product:{id}", warm: {source: {type: jsonl, path: p.jsonl}}}
""")
    redis_client.set("t:product:3", "kept", px=60_000)
    ns = warm_namespaces(redis_client, policy, only_missing=True).namespaces[0]
    assert (ns.written, ns.skipped) == (499, 1)
    assert redis_client.get("t:product:3") == b"kept"


@pytest.mark.parametrize("sqlalchemy", [True, False], ids=["sqlalchemy", "sqlite3"])
def test_sqlite_bulk_and_row_paths_write_the_same(
        tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
        sqlalchemy: bool) -> None:
    import math
    import sqlite3
    import sys

    if not sqlalchemy:
        monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # the standard-library reader

    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("CREATE TABLE p (id, name TEXT, price REAL, note, blob BLOB)")
    rows: list[tuple[Any, ...]] = []
    for n in range(2500):
        rows.append((n, f"caf\u00e9 {n}", n / 7, "x" if n % 2 else 5, None if n % 3 else b"no"))
    for n, odd in enumerate([
            (3, "duplicate id", 1.0, "y", None), (None, "no id", 1.0, "y", None),
            ("a:b", "colon", 1.0, "y", None), (2**62, "big id", 1.0, "y", None),
            (900001, "tiny", 1e-7, "y", None), (900002, "nan (sqlite stores NULL)", math.nan, "z", None),
            (900003, "inf", math.inf, "z", None), (900004, "null text", 2.5, "null", None),
            (900005, "big", 1e16, "y", None), (900006, "x" * 3000, 1.5, "y", None),
            ("s-1", "string key", 0.5, "y", None)]):
        rows.insert(97 * (n + 1), odd)
    db.executemany("INSERT INTO p VALUES (?, ?, ?, ?, ?)", rows)
    db.execute("CREATE TABLE q AS SELECT id, name, price, note FROM p WHERE blob IS NULL")
    db.commit()
    db.close()
    taken: list[int] = []
    real_rows = loop.RowWarm.rows

    def counting(self: Any, stream: Any) -> None:
        taken.append(1)
        real_rows(self, stream)

    for table in ("p", "q"):  # p: every chunk has a BLOB (row path); q: plain chunks too
        policy = write_policy(tmp_path, f"""\
  product:
    key: "product:{{id}}"
    max_value_bytes: 2kb
    warm: {{source: {{type: sql, url: "sqlite:///shop.db", query: "SELECT * FROM {table}"}}}}
""")
        with monkeypatch.context() as patch:
            if table == "q":  # the chunks that are not plain go row by row, the others not
                patch.setattr(loop.RowWarm, "rows", counting)
            (report, keys), _ = warm_both_plain(redis_client, policy, monkeypatch)
            if table == "q":
                assert 0 < len(taken) // 2 < report.namespaces[0].rows // 64
        ns = report.namespaces[0]
        assert ns.rejected >= 3 and ns.written == len(keys) > 800
        assert b'"price":1e-07,"note":"y"' in keys[b"t:product:900001"][0]
        assert b'"price":Infinity,"note":"z"' in keys[b"t:product:900003"][0]


def warm_both_plain(client: redis.Redis, policy: Policy,
                    monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[WarmReport, Any], ...]:
    """``warm_both`` for a source that is not JSON lines (no line-by-line handback)."""
    out = []
    for use_bulk in (True, False):
        client.flushall()
        with monkeypatch.context() as patch:
            if not use_bulk:
                patch.setattr(core, "bulk_reader", lambda warm: None)
            started = time.monotonic()
            report = warm_namespaces(client, policy, rng=random.Random(5))
        out.append((report, keyspace(client), time.monotonic() - started))
    (bulk_report, bulk_keys, bulk_s), (row_report, row_keys, row_s) = out
    assert comparable(bulk_report) == comparable(row_report)
    assert bulk_keys.keys() == row_keys.keys()
    slack_ms = int((bulk_s + row_s) * 1000) + 1000
    for key, (value, pttl) in bulk_keys.items():
        assert value == row_keys[key][0], key
        assert abs(pttl - row_keys[key][1]) <= slack_ms, key
    return (bulk_report, bulk_keys), (row_report, row_keys)
