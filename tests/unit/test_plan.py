"""plan without a server: what each policy change is called, its JSON round trip, the
Markdown comment, --fail-on, --base from git, and the refusals of a stale plan."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from cachectl.cli import main
from cachectl.plan import (
    Change,
    LiveFigures,
    PolicyPlan,
    StalePlanError,
    check_plan_current,
    diff_policies,
    plan_from_json,
)
from cachectl.policy import Policy
from cachectl.policy.loader import parse_policy
from cachectl.render.plan import plan_markdown, plan_text
from tests.support import plan_scenario as scenario


def _policy(text: str) -> Policy:
    result = parse_policy(text, "p.yaml", {})
    assert result.policy is not None, result.diagnostics
    return result.policy


OLD, NEW = _policy(scenario.OLD), _policy(scenario.NEW)


def test_every_kind_of_change_is_named() -> None:
    plan = diff_policies(OLD, NEW)
    rows = {n.namespace: n for n in plan.namespaces}
    assert {n: r.change for n, r in rows.items()} == {
        "product": Change.CHANGED, "search": Change.REKEYED, "price": Change.REKEYED,
        "basket": Change.RENAMED, "stock": Change.UNCHANGED, "session": Change.CHANGED,
        "promo": Change.ADDED, "banner": Change.REMOVED}
    assert rows["basket"].old_name == "cart"
    assert rows["price"].reason == "version 1 -> 2"
    assert rows["search"].reason == "template 'search:{q}' -> 'search:{q:hash}'"
    assert rows["product"].clamp_ms == 4_200_000 and rows["product"].action == "clamp"
    # a longer grace raises the maximum: nothing alive can exceed it, nothing to clamp
    assert rows["session"].clamp_ms is None and rows["session"].action == "none"
    assert [f.field for f in rows["product"].fields] == ["ttl_ms"]  # hit_rate is global
    assert [(f.field, f.old, f.new) for f in plan.thresholds] == [("hit_rate", 0.8, 0.85)]
    assert plan.destructive


def test_a_new_key_prefix_rekeys_every_namespace() -> None:
    new = _policy(scenario.OLD.replace("key_prefix: shop", "key_prefix: shop2"))
    plan = diff_policies(OLD, new)
    assert {n.change for n in plan.namespaces} == {Change.REKEYED}
    assert plan.namespaces[0].reason == "key_prefix 'shop' -> 'shop2'"


def test_only_timing_and_thresholds_is_not_destructive() -> None:
    new = _policy(scenario.OLD.replace("ttl: 6h", "ttl: 12h"))
    plan = diff_policies(OLD, new)
    assert not plan.destructive
    assert [n.change for n in plan.namespaces].count(Change.CHANGED) == 1
    assert all(n.clamp_ms is None for n in plan.namespaces)  # a longer TTL clamps nothing
    assert diff_policies(OLD, OLD).fingerprint == diff_policies(OLD, OLD).fingerprint
    assert diff_policies(OLD, new).fingerprint != diff_policies(OLD, OLD).fingerprint


def _measured(plan_keys: int, above: int) -> PolicyPlan:
    plan = diff_policies(OLD, NEW)
    figures = {n.namespace: LiveFigures(plan_keys, 0, 100, 0, above, 0) for n in plan.namespaces}
    return plan.with_live(figures, "exact", 1000, 0.1)


def test_the_json_document_round_trips() -> None:
    plan = _measured(30, 5)
    doc = json.loads(json.dumps(plan.to_json()))
    assert plan_from_json(doc) == plan
    with pytest.raises(Exception, match="not a cachectl plan"):
        plan_from_json({"format": 1})


def test_a_stale_plan_is_refused_and_a_smaller_keyspace_is_not() -> None:
    given = _measured(300, 50)
    check_plan_current(given, _measured(100, 10))  # keys expired meanwhile: fine
    with pytest.raises(StalePlanError, match="would now remove 400 keys, the plan said 300"):
        check_plan_current(given, _measured(400, 10))
    with pytest.raises(StalePlanError, match="without --url"):
        check_plan_current(diff_policies(OLD, NEW), _measured(1, 1))
    other = dataclasses.replace(given, fingerprint="0" * 16)
    with pytest.raises(StalePlanError, match="other policies"):
        check_plan_current(other, given)


def test_text_and_markdown_show_the_same_rows() -> None:
    plan = _measured(30, 5)
    text, md = plan_text(plan), plan_markdown(plan)
    assert "| search | re-keyed | template 'search:{q}' -> 'search:{q:hash}' | 30 |" in md
    assert "**1 added, 1 removed, 1 renamed, 2 re-keyed, 2 changed, 1 unchanged; destructive" in md
    assert "clamp TTL to 1h10m" in text and "clamp TTL to 1h10m" in md
    assert "stock" not in text  # unchanged namespaces are only counted


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(scenario.OLD)
    new.write_text(scenario.NEW)
    return old, new


def test_fail_on_destructive_exits_1_for_ci(files: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    old, new = map(str, files)
    assert main(["plan", old, new]) == 0
    assert main(["plan", old, new, "--fail-on", "destructive"]) == 1
    assert main(["plan", old, old, "--fail-on", "destructive"]) == 0
    assert "no namespace changes" in capsys.readouterr().out
    assert main(["plan", old]) == 2
    assert "give the old and the new policy" in capsys.readouterr().err


def test_base_reads_the_old_policy_from_git(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    policy = tmp_path / "cachectl.yaml"
    policy.write_text(scenario.OLD)
    git("add", "cachectl.yaml")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "old")
    policy.write_text(scenario.NEW)
    assert main(["plan", str(policy), "--base", "main", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["old"] == f"{policy}@main" and doc["changes"]["rekeyed"] == 2
    assert main(["plan", str(policy), "--base", "nosuchref"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_trace_predicts_the_hit_rate_before_and_after(files: tuple[Path, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # 100 products each read every 90 minutes for 9 hours: a 6 h TTL keeps them between
    # reads, the new 1 h (+10 m stale) never does
    rows = sorted((i + 5400.0 * r, f"shop:product:{i}") for r in range(7) for i in range(100))
    rows += [(10.0 + i, f"shop:price:v1:{i}") for i in range(40)]  # 40 keys in the first 5 min
    rows += [(400.0 + i, f"shop:price:v1:{i}") for i in range(40)]  # and each read again
    trace = tmp_path / "trace.csv"
    trace.write_text("time,key,size\n" + "".join(f"{t},{k},100\n" for t, k in sorted(rows)))
    assert main(["plan", *map(str, files), "--trace", str(trace), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    predicted = {r["namespace"]: r["predicted"] for r in doc["namespaces"]}
    product = predicted["product"]
    assert product["hit_rate_before"] > 0.5 and product["hit_rate_after"] == 0.0
    assert product["loads_per_s_after"] > product["loads_per_s_before"]
    # re-keyed: its 40 keys would have hit on their second read; cold, each loads again
    assert predicted["price"]["rekey_extra_loads"] == round(40 * predicted["price"]["hit_rate_before"])
    assert predicted["price"]["hit_rate_before"] == pytest.approx(0.5)
    assert doc["traces"] == [str(trace)]
    assert plan_from_json(doc).namespaces[0].predicted is not None
