"""cachectl inspect and audit end to end: exit codes, JSON documents, JSON lines, tables."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis

from cachectl.cli import main

POLICY = """
version: 1
redis: {key_prefix: shop}
namespaces:
  product: {key: "product:{id}", ttl: 1h, stale: 10m, jitter: 10%, max_value_bytes: 100B}
  reviews: {key: "product:reviews:{id}", ttl: 30m}
  empty: {key: "empty:{id}", ttl: 1m}
"""
HOUR = 3_600_000


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_keys_as_json(redis_client: redis.Redis, redis_url: str, policy_file: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    redis_client.set("shop:product:42", json.dumps({"name": "shoe", "sizes": [40, 41]}),
                     px=HOUR)
    redis_client.set(b"shop:product:\xff\x00", b"\x00\x01\xfe", px=HOUR)
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url, "--json",
                         "shop:product:42", "--hex", )
    assert code == 2  # --hex: "shop:product:42" is not hexadecimal
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url, "--json",
                         "shop:product:42")
    assert code == 0, err
    [doc] = json.loads(out)
    assert doc["namespace"] == "product"
    assert doc["params"] == {"id": "42"}
    assert doc["type"] == "string"
    assert doc["length"] == len(json.dumps({"name": "shoe", "sizes": [40, 41]}))
    assert doc["memory_bytes"] == redis_client.memory_usage("shop:product:42")
    assert doc["freshness"] == "fresh"  # PTTL 1h > grace 10m
    assert doc["ttl_fits"] is True
    assert doc["preview_format"] == "json"
    assert json.loads(doc["preview"]) == {"name": "shoe", "sizes": [40, 41]}
    code, out, _ = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url, "--json",
                       "--hex", (b"shop:product:\xff\x00").hex(), b"shop:product:nope".hex())
    assert code == 1  # one key is missing
    binary, missing = json.loads(out)
    assert binary["namespace"] == "product"
    assert binary["key_hex"] == (b"shop:product:\xff\x00").hex()
    assert binary["preview_format"] == "hex"
    assert binary["preview"] == "00 01 fe"
    assert missing["exists"] is False


def test_inspect_key_panel_shows_state_and_fit(redis_client: redis.Redis, redis_url: str,
                                               policy_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    redis_client.set("shop:product:7", "plain text", px=5 * HOUR)
    code, out, _ = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url,
                       "shop:product:7")
    assert code == 0
    assert "product" in out and "id=7" in out
    assert "no (policy allows at most 1h16m)" in out  # ttl 1h·1.1 + grace 10m
    assert "plain text" in out


def test_namespace_listing_streams_json_lines(redis_client: redis.Redis, redis_url: str,
                                              policy_file: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(25):
        redis_client.set(f"shop:product:{i}", "v", px=HOUR)
        redis_client.set(f"shop:product:reviews:{i}", "r", px=HOUR)
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url,
                         "-n", "product", "--limit", "0", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 25
    assert {d["namespace"] for d in lines} == {"product"}
    assert all(":reviews:" not in d["key"] for d in lines)
    code, out, _ = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url,
                       "-n", "product", "--limit", "10", "--json")
    assert len(out.splitlines()) == 10
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url,
                         "-n", "prodct")
    assert code == 2
    assert "product" in err  # did you mean


def test_summary_json_exact_and_sampled(redis_client: redis.Redis, redis_url: str,
                                        policy_file: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pipe = redis_client.pipeline(transaction=False)
    for i in range(400):
        pipe.set(f"shop:product:{i}", "v" * (i % 50), px=HOUR)
    for i in range(100):
        pipe.set(f"order:{i}:items", "x")
    pipe.execute()
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["mode"] == "exact"
    rows = {r["namespace"]: r for r in doc["namespaces"]}
    assert rows["product"]["keys"] == 400
    assert rows["empty"]["keys"] == 0
    assert doc["unmatched"][0]["pattern"] == "order:*:items"
    assert doc["unmatched"][0]["keys"] == 100
    exact = rows["product"]["memory_bytes"]
    code, out, _ = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url, "--json",
                       "--sample", "50")
    doc = json.loads(out)
    assert doc["mode"] == "sample"
    row = {r["namespace"]: r for r in doc["namespaces"]}["product"]
    assert row["estimated"] is True
    assert row["memory_margin_bytes"] > 0
    assert abs(row["memory_bytes"] - exact) <= 3 * row["memory_margin_bytes"]


def test_audit_exit_codes_and_json(redis_client: redis.Redis, redis_url: str,
                                   policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    redis_client.set("shop:product:1", "v", px=HOUR)
    code, out, err = run(capsys, "audit", "-p", str(policy_file), "--url", redis_url, "--json")
    assert code == 0, err
    assert json.loads(out)["errors"] == 0
    redis_client.set("shop:product:2", "x" * 150, px=HOUR)
    redis_client.set("shop:product:3", "v")
    redis_client.set("shop:product:reviews:1", "v", px=10 * HOUR)
    redis_client.set("stray key", "v")
    code, out, _ = run(capsys, "audit", "-p", str(policy_file), "--url", redis_url, "--json",
                       "--top", "2")
    assert code == 1
    doc = json.loads(out)
    found = {(f["code"], f["namespace"]): f for f in doc["findings"]}
    assert found[("no-ttl", "product")]["count"] == 1
    assert found[("no-ttl", "product")]["examples"] == [{"key": "shop:product:3"}]
    assert found[("value-too-big", "product")]["examples"] == [
        {"key": "shop:product:2", "value": 150}]
    assert found[("ttl-too-long", "reviews")]["count"] == 1
    assert found[("unmatched", None)]["count"] == 1
    assert found[("unmatched", None)]["severity"] == "warning"
    big = found[("big-key", None)]
    assert big["severity"] == "info" and big["count"] == 2
    assert big["examples"][0]["key"] == "shop:product:2"
    assert doc["errors"] == 3 and doc["warnings"] == 1


def test_piped_output_is_results_only(redis_client: redis.Redis, redis_url: str,
                                      policy_file: Path) -> None:
    redis_client.set("shop:product:1", "v", px=HOUR)
    exe = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "cachectl"
    proc = subprocess.run([str(exe), "inspect", "-p", str(policy_file), "--url", redis_url,
                           "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stderr == ""  # no progress bar, no chatter
    assert json.loads(proc.stdout)["namespaces"]
    proc = subprocess.run([str(exe), "audit", "-p", str(policy_file), "--url", redis_url],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert "0 error(s), 0 warning(s) in 1 keys" in proc.stdout


def test_key_and_namespace_together_is_a_usage_error(redis_url: str, policy_file: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url,
                       "-n", "product", "shop:product:1")
    assert code == 2
    assert "not both" in err


def test_a_slow_exact_summary_on_a_terminal_suggests_sampling(
        redis_client: redis.Redis, redis_url: str, policy_file: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import cachectl.cli.inspect as cli_inspect
    from cachectl.render import console

    redis_client.set("shop:product:1", "v", px=HOUR)
    base = ("inspect", "-p", str(policy_file), "--url", redis_url, "--json")
    monkeypatch.setattr(cli_inspect, "SUGGEST_SAMPLE_AFTER_S", 0.0)  # every run is "slow"
    code, _, err = run(capsys, *base)
    assert code == 0 and "--sample" not in err  # piped: results only
    monkeypatch.setattr(console, "is_terminal", lambda stream=None: True)
    monkeypatch.setattr(cli_inspect, "progress_if_terminal", cli_inspect._silent)
    code, _, err = run(capsys, *base)
    assert code == 0 and "hint: measuring every key took" in err and "--sample 20000" in err
    code, _, err = run(capsys, *base, "--sample", "50")
    assert code == 0 and "hint:" not in err  # already sampled


def test_inspect_key_shows_a_frame_s_codec_and_both_sizes(
        redis_client: redis.Redis, redis_url: str, policy_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from cachectl import compression

    plain = json.dumps({"name": "shoe", "text": "soft leather " * 200}).encode()
    stored = compression.encode(plain, compression.Compression("zlib", 6, 256))
    redis_client.set("shop:product:9", stored, px=HOUR)
    redis_client.set("shop:product:10", compression.MAGIC + b"\x02\x09broken", px=HOUR)
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url, "--json",
                         "shop:product:9", "shop:product:10")
    assert code == 0, err
    good, bad = json.loads(out)
    assert (good["codec"], good["stored_bytes"], good["plain_bytes"]) == (
        "zlib", len(stored), len(plain))
    assert good["preview_format"] == "json" and "soft leather" in good["preview"]
    assert bad["codec"] is None and "does not decompress" in bad["frame_error"]
    code, out, _ = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url,
                       "shop:product:9", "shop:product:10")
    assert f"zlib: {len(stored):,} B stored, {len(plain):,} B plain" in out
    assert "corrupt frame" in out


def test_inspect_compression_reports_every_candidate_and_a_recommendation(
        redis_client: redis.Redis, redis_url: str, policy_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(120):
        redis_client.set(f"shop:product:reviews:{i}", json.dumps(
            {"id": i, "text": f"review {i}: " + "great fit, soft fabric, true to size. " * 12}),
            px=HOUR)
    code, out, err = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url,
                         "--compression", "-n", "reviews", "--sample", "50", "--json")
    assert code == 0, err
    doc = json.loads(out)
    [ns] = doc["namespaces"]
    assert (ns["namespace"], ns["keys"], ns["sampled"]) == ("reviews", 120, 50)
    codecs = {(c["codec"], c["level"]) for c in ns["candidates"]}
    assert {("zstd", 3), ("lz4", 0), ("zlib", 6)} <= codecs
    assert ns["recommended"]["saved_bytes"] > 0  # (same-size values: a margin of 0)
    assert all(c["compress_us"] > 0 and c["decompress_us"] > 0 for c in ns["candidates"])
    code, out, _ = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url,
                       "--compression", "-n", "reviews")
    assert code == 0
    assert "reviews: compress: {codec:" in out and "decompress µs" in out
    code, _, err = run(capsys, "inspect", "-p", str(policy_file), "--url", redis_url,
                       "--compression", "shop:product:1")
    assert code == 2 and "--compression estimates namespaces" in err
