"""`cachectl observe`: rules and a dashboard from the policy, checked by Prometheus's own promtool.

promtool check rules on every policy that loads (policies/ and the valid lint cases);
promtool test rules with input series: a critical namespace below 95 % fires, a namespace
below min_requests does not, and the alert resolves when the rate recovers. The dashboard
is checked against what `stats --format prometheus` (the --serve renderer) exposes on a
real server, and the committed examples in docs/observe/ against the generator.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cachectl.cli import main
from cachectl.counter_format import write_buckets
from cachectl.errors import PolicyError
from cachectl.observe import ObserveOptions, generate
from cachectl.observe.rules import RuleOptions
from cachectl.policy import load_policy
from tests.support.prometheus import promtool

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "observe"

POLICY_TEXT = """\
version: 1
redis: {key_prefix: t}
thresholds: {min_requests: 100, critical_hit_rate: 0.95}
defaults: {ttl: 10m}
namespaces:
  product: {key: "product:{id}", critical: true}
  price:   {key: "price:{sku}", critical: true}
  banner:  {key: "banner:{id}"}
"""


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "cachectl.yaml"
    path.write_text(POLICY_TEXT)
    return path


def observe(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["observe", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _loadable_policies() -> list[Path]:
    found = sorted((REPO / "policies").glob("*.yaml"))
    for case in sorted((REPO / "tests" / "lint_cases").glob("*.yaml")):
        try:
            load_policy(case, env={})
        except (PolicyError, OSError):
            continue
        found.append(case)
    return found


def test_the_same_policy_gives_the_same_bytes_and_check_says_so(
        capsys: pytest.CaptureFixture[str], policy_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "monitoring"
    code, _, err = observe(capsys, "-p", str(policy_path), "--out", str(out))
    assert code == 0 and err.count("written") == 3
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["t.dashboard.json", "t.prometheusrule.yaml", "t.rules.yml"]
    code, out_json, _ = observe(capsys, "-p", str(policy_path), "--out", str(out), "--check", "--json")
    doc = json.loads(out_json)
    assert code == 0 and doc["current"] and {f["status"] for f in doc["files"]} == {"unchanged"}
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    # CI catches a policy change that was not regenerated, and a hand edit
    policy_path.write_text(POLICY_TEXT.replace("critical_hit_rate: 0.95", "critical_hit_rate: 0.97"))
    code, _, err = observe(capsys, "-p", str(policy_path), "--out", str(out), "--check")
    assert code == 1 and "stale" in err and "hint: cachectl observe" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first  # --check writes nothing
    (out / "t.dashboard.json").unlink()
    code, out_json, _ = observe(capsys, "-p", str(policy_path), "--out", str(out), "--check", "--json")
    assert code == 1 and "missing" in {f["status"] for f in json.loads(out_json)["files"]}


@pytest.mark.parametrize("args", [
    ["--window", "soon"], ["--for", "0s"], ["--name", "Not A Name"], ["--window", "30d"],
])
def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str], policy_path: Path, tmp_path: Path,
                            args: list[str]) -> None:
    code, out, err = observe(capsys, "-p", str(policy_path), "--out", str(tmp_path / "o"), *args)
    assert code == 2 and out == "" and err.startswith("error:") and "Traceback" not in err


def test_promtool_accepts_the_rules_of_every_policy(tmp_path: Path) -> None:
    files = []
    for path in _loadable_policies():
        policy = load_policy(path, env={})
        opts = ObserveOptions(name=re.sub(r"[^a-z0-9-]", "-", path.stem.lower()).strip("-"),
                              rules=RuleOptions(policy_file=path.name))
        for f in generate(policy, opts):
            (tmp_path / f.name).write_text(f.text)
            if f.kind == "rules":
                files.append(str(tmp_path / f.name))
            if f.kind == "prometheusrule":  # the same groups under spec:
                doc = yaml.safe_load(f.text)
                assert doc["kind"] == "PrometheusRule"
                assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    assert len(files) >= 10, files  # both policies and the valid lint cases
    checked = promtool("check", "rules", *files)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("SUCCESS") == len(files)


def _rules(policy_path: Path, **rule_options: Any) -> tuple[list[Any], dict[str, str]]:
    policy = load_policy(policy_path, env={})
    files = generate(policy, ObserveOptions(rules=RuleOptions(policy_file="cachectl.yaml", **rule_options)))
    text = next(f.text for f in files if f.kind == "rules")
    return yaml.safe_load(text)["groups"], {"rules": text}


def test_promtool_unit_tests_fire_respect_min_requests_and_resolve(policy_path: Path,
                                                                  tmp_path: Path) -> None:
    groups, text = _rules(policy_path, window_ms=60_000, for_ms=120_000)
    (tmp_path / "t.rules.yml").write_text(text["rules"])
    product = next(r for r in groups[0]["rules"] if r.get("labels", {}).get("cache_namespace") == "product")
    # every 15 s: product healthy (99 fresh, 1 miss) for 10 m, at 90 % for 10 m, healthy again;
    # price at 50 % all along, but 8 requests a minute, below min_requests (100)
    def requests(namespace: str, outcome: str) -> str:
        return (f'cachectl_namespace_requests_total{{job="cachectl",cache_namespace="{namespace}",'
                f'outcome="{outcome}"}}')

    series = [
        {"series": requests("product", "fresh"), "values": "0+99x40 4050+90x40 7749+99x80"},
        {"series": requests("product", "miss"), "values": "0+1x40 50+10x40 451+1x80"},
        {"series": requests("price", "fresh"), "values": "0+1x160"},
        {"series": requests("price", "miss"), "values": "0+1x160"},
    ]
    firing = {
        "exp_labels": {"job": "cachectl", "cache_namespace": "product", "severity": "critical",
                       "threshold": "0.95", "cachectl_policy": "t"},
        "exp_annotations": {
            "summary": "Hit rate of critical namespace product is 90%, must exceed 95%",
            "description": product["annotations"]["description"],
            "runbook": product["annotations"]["runbook"],
        },
    }
    tests = {"rule_files": ["t.rules.yml"], "evaluation_interval": "15s", "tests": [{
        "interval": "15s",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "CachectlHitRateLow", "exp_alerts": []},
            # 10 m + 1 m for the window to fill + 2 m `for:`: pending until then
            {"eval_time": "12m", "alertname": "CachectlHitRateLow", "exp_alerts": []},
            {"eval_time": "15m", "alertname": "CachectlHitRateLow", "exp_alerts": [firing]},
            {"eval_time": "19m30s", "alertname": "CachectlHitRateLow", "exp_alerts": [firing]},
            {"eval_time": "23m", "alertname": "CachectlHitRateLow", "exp_alerts": []},
            {"eval_time": "35m", "alertname": "CachectlHitRateLow", "exp_alerts": []},
        ],
        "promql_expr_test": [{
            "expr": 'cachectl:namespace_hit_ratio:rate1m{cache_namespace="price"}',
            "eval_time": "15m",
            "exp_samples": [{"labels": 'cachectl:namespace_hit_ratio:rate1m{job="cachectl",'
                                       'cache_namespace="price"}', "value": 0.5}],
        }],
    }]}
    (tmp_path / "t.test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", "t.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def _exposed_names(redis_url: str, redis_client: redis.Redis, policy_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> set[str]:
    pipe = redis_client.pipeline(transaction=False)
    write_buckets(pipe, "t:cachectl", {int(time.time() // 60): {("product", "fresh_hits"): 5,
                                                                ("product", "loads"): 1}})
    pipe.execute()
    redis_client.get("t:product:1")
    code = main(["stats", "-p", str(policy_path), "--url", redis_url, "--interval", "100ms",
                 "--format", "prometheus"])
    out, _ = capsys.readouterr()
    assert code in (0, 1)
    names = set()
    for family in text_string_to_metric_families(out):
        names.update(s.name for s in family.samples)
    return names


def test_the_dashboard_queries_only_exposed_metrics_and_shows_every_namespace(
        capsys: pytest.CaptureFixture[str], redis_url: str, redis_client: redis.Redis,
        policy_path: Path, tmp_path: Path) -> None:
    exposed = _exposed_names(redis_url, redis_client, policy_path, capsys) | {"up"}
    observe(capsys, "-p", str(policy_path), "--out", str(tmp_path))
    board = json.loads((tmp_path / "t.dashboard.json").read_text())
    assert board["templating"]["list"][0]["type"] == "datasource"
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Redis", "product (critical)", "price (critical)", "banner"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()  # the grid: 24 columns, no two panels on one cell
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
    for panel in board["panels"]:  # a second axis names a series the panel draws
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            legends = {t["legendFormat"] for t in panel["targets"]}
            assert override["matcher"]["options"] in legends
    queried: set[str] = set()
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            queried.update(re.findall(r"\b(cachectl_[a-z0-9_]+)\b", target["expr"]))
    assert queried and queried <= exposed, queried - exposed
    for name in ("product", "price", "banner"):
        assert any(f'cache_namespace="{name}"' in t["expr"] for p in board["panels"]
                   for t in p.get("targets", []))
    # the rules read only exposed metrics too (and their own recorded series)
    rules = yaml.safe_load((tmp_path / "t.rules.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        assert set(re.findall(r"\b(cachectl_[a-z0-9_]+)\b", rule["expr"])) <= exposed


def test_the_committed_examples_are_current() -> None:
    policy = load_policy(REPO / "policies" / "ecommerce.yaml", env={})
    files = generate(policy, ObserveOptions(rules=RuleOptions(policy_file="ecommerce.yaml")))
    for f in files:
        committed = EXAMPLES / f.name
        assert committed.read_text() == f.text, (
            f"{committed} is stale: cachectl observe -p policies/ecommerce.yaml --out docs/observe")


def test_an_out_that_is_no_folder_is_exit_2_not_a_crash(capsys: pytest.CaptureFixture[str],
                                                        policy_path: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    fifo_dir = tmp_path / "withfifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "t.rules.yml")  # read by --check and by a write's comparison: never opened
    cases = [
        (["--out", str(afile)], f"error: --out: {afile} is a file, not a folder"),
        (["--out", str(afile), "--check"], f"error: --out: {afile}/t.rules.yml: Not a directory"),
        (["--out", str(afile / "sub")], f"error: --out: {afile}/sub: Not a directory"),
        (["--out", str(fifo_dir), "--check"], "t.rules.yml: a FIFO (named pipe), not a regular file"),
        (["--out", str(fifo_dir)], "t.rules.yml: a FIFO (named pipe), not a regular file"),
    ]
    for args, message in cases:
        code, _, err = observe(capsys, "-p", str(policy_path), *args)
        assert code == 2, (args, err)
        assert message in err and "internal error" not in err, (args, err)
        assert "hint: --out names a folder cachectl can write into" in err
