"""`cachectl warm`: exit codes, the summary, --json, and errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from cachectl.cli import main

REPO = Path(__file__).resolve().parents[2]
ECOMMERCE = str(REPO / "policies" / "ecommerce.yaml")


def policy_with(tmp_path: Path, lines: str) -> str:
    (tmp_path / "p.jsonl").write_text(lines)
    path = tmp_path / "cachectl.yaml"
    path.write_text("version: 1\nredis: {key_prefix: c}\ndefaults: {ttl: 1m}\nnamespaces:\n"
                    '  product: {key: "product:{id}", warm: {source: {type: jsonl, path: '
                    "p.jsonl}}}\n"
                    '  cart: {key: "cart:{user_id}"}\n')
    return str(path)


def test_warm_json_report_and_exit_0(redis_url: str, redis_client: redis.Redis,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["warm", "-p", ECOMMERCE, "--url", redis_url, "-n", "price", "-n", "stock",
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert [n["namespace"] for n in report["namespaces"]] == ["price", "stock"]
    assert report["written"] == 6000 == redis_client.dbsize()
    assert report["namespaces"][0]["ttl_bounds_ms"] == [2070000, 2130000]
    assert err == ""  # no progress bars when not on a terminal


def test_warm_table_lists_rejected_rows_and_exits_1(tmp_path: Path, redis_url: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    policy = policy_with(tmp_path, '{"id": 1}\n{"name": "x"}\nnot json\n')
    code = main(["warm", "-p", policy, "--url", redis_url])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "product: 2 rows not written" in out
    assert "p.jsonl:2: no field 'id' for key 'product:{id}'" in out
    assert "p.jsonl:3: not JSON" in out
    assert "wrote 1 key (" in out and "rejected 2 rows" in out


def test_dry_run_needs_no_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["warm", "-p", ECOMMERCE, "--url", "redis://127.0.0.1:1/0", "--dry-run",
                 "-n", "category", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert report["dry_run"] is True and report["written"] == report["namespaces"][0]["rows"]
    assert report["namespaces"][0]["sample_keys"][0].startswith("shop:category:")


@pytest.mark.parametrize(("args", "message"), [
    (["-n", "prodcut"], "did you mean 'product'?"),
    (["-n", "cart"], "namespace cart has no warm source"),
    (["--source-override", "product"], "is not NS=PATH"),
    (["--source-override", "product=/nonexistent/x.jsonl"], "does not exist"),
    (["--rate", "0"], "'--rate': 0 must be positive"),
])
def test_usage_errors_exit_2_without_traceback(tmp_path: Path, redis_url: str, args: list[str],
                                               message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    policy = policy_with(tmp_path, '{"id": 1}\n')
    code = main(["warm", "-p", policy, "--url", redis_url, *args])
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err and "Traceback" not in err


def test_unreachable_redis_exits_3_and_hides_the_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = policy_with(tmp_path, '{"id": 1}\n')
    code = main(["warm", "-p", policy, "--url", "redis://:hunter2@127.0.0.1:1/0",
                 "--timeout", "0.5"])
    _, err = capsys.readouterr()
    assert code == 3
    assert "hunter2" not in err and "***" in err


def test_help_shows_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["warm", "--help"]) == 0
    out, _ = capsys.readouterr()
    for flag in ("--namespace", "--source-override", "--dry-run", "--only-missing", "--rate",
                 "--max-errors", "--json", "--url"):
        assert flag in out
