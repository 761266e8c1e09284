"""`cachectl stats` through Sentinel: the primary is found, and named by the target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachectl.cli import main
from tests.support.sentinel import SentinelFixture


def test_stats_through_sentinel(sentinel: SentinelFixture, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cachectl.yaml"
    path.write_text('version: 1\nredis: {key_prefix: t}\nnamespaces:\n'
                    '  price: {key: "price:{sku}", ttl: 5m}\n')
    sentinel.current_primary().client().set("t:price:1", b"1", px=60_000)
    args = ["stats", "-p", str(path), "--master-name", sentinel.master_name,
            "--interval", "100ms", "--json"]
    for addr in sentinel.sentinel_addrs:
        args += ["--sentinel", addr]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    node = doc["server"]["nodes"][0]
    assert node["node"].startswith("sentinel ") and "master mymaster" in node["node"]
    assert node["keys"] == 1
    assert doc["namespaces"][0]["keys"]["keys"] == 1
