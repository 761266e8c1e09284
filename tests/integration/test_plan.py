"""plan and apply against a real redis-server: exact counts, the keyspace after apply,
a SIGKILL mid-apply then a rerun, a second apply with nothing to do, a stale plan."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from cachectl.cli import main
from cachectl.plan import apply_plan, diff_policies, measure_plan
from cachectl.policy import Policy, load_policy
from tests.support import plan_scenario as scenario


@pytest.fixture
def policies(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(scenario.OLD)
    new.write_text(scenario.NEW)
    return old, new


def _load(paths: tuple[Path, Path]) -> tuple[Policy, Policy]:
    return load_policy(paths[0]), load_policy(paths[1])


def test_plan_counts_exactly_what_each_change_touches(
        redis_client: redis.Redis, redis_url: str, policies: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    seeded = scenario.keyspace()
    scenario.write(redis_client, seeded)
    assert main(["plan", str(policies[0]), str(policies[1]), "--url", redis_url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["namespace"]: r for r in doc["namespaces"]}
    assert {n: r["change"] for n, r in rows.items()} == {
        "product": "changed", "search": "rekeyed", "price": "rekeyed", "basket": "renamed",
        "stock": "unchanged", "session": "changed", "promo": "added", "banner": "removed"}
    assert {n: r["action"] for n, r in rows.items()} == {
        "product": "clamp", "search": "remove", "price": "remove", "basket": "none",
        "stock": "none", "session": "none", "promo": "warm", "banner": "remove"}
    live = {n: (r["live"]["keys"], r["live"]["ttl_above_max"]) for n, r in rows.items()}
    # search: 55 keys match the old template, 5 of them are the new template's and stay
    assert live == {"product": (102, 62), "search": (50, 0), "price": (40, 0),
                    "basket": (20, 0), "stock": (25, 0), "session": (10, 0), "promo": (0, 0),
                    "banner": (30, 0)}
    assert rows["price"]["reason"] == "version 1 -> 2"
    assert rows["product"]["clamp_ms"] == 4_200_000  # 1h + 10m of stale
    assert doc["live"] == {"mode": "exact", "total_keys": len(seeded.ttl_ms),
                           "elapsed_s": doc["live"]["elapsed_s"],
                           "keys_to_remove": 120, "keys_to_clamp": 62}
    assert doc["destructive"] is True
    assert doc["thresholds"] == [{"field": "hit_rate", "old": 0.8, "new": 0.85}]


def test_apply_leaves_every_key_where_the_new_policy_says(
        redis_client: redis.Redis, policies: tuple[Path, Path]) -> None:
    seeded = scenario.keyspace()
    scenario.write(redis_client, seeded)
    before = scenario.snapshot([redis_client])
    old, new = _load(policies)
    plan = measure_plan(redis_client, diff_policies(old, new), old, new)
    result = apply_plan(redis_client, plan, old, new)
    assert result.clamped is not None and result.clamped.changed == 62
    assert result.removed is not None and result.removed.changed == 120
    scenario.check_applied(before, scenario.snapshot([redis_client]), seeded, new)
    again = measure_plan(redis_client, diff_policies(old, new), old, new)
    second = apply_plan(redis_client, again, old, new)
    assert second.nothing_to_do and second.clamped is None and second.removed is None


def test_a_second_apply_reports_nothing_to_do(
        redis_client: redis.Redis, redis_url: str, policies: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    scenario.write(redis_client, scenario.keyspace())
    args = ["apply", str(policies[0]), str(policies[1]), "--url", redis_url, "--yes"]
    assert main(args) == 0
    assert "62 clamped of 102 found" in capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["nothing_to_do"] is True and doc["removed"] is None and doc["clamped"] is None


def test_dry_run_and_an_unconfirmed_apply_change_nothing(
        redis_client: redis.Redis, redis_url: str, policies: tuple[Path, Path]) -> None:
    scenario.write(redis_client, scenario.keyspace())
    before = scenario.snapshot([redis_client])
    args = ["apply", str(policies[0]), str(policies[1]), "--url", redis_url]
    assert main([*args, "--dry-run"]) == 0
    assert main(args) == 2  # not a terminal, no --yes: refused
    after = scenario.snapshot([redis_client])
    assert {k: d for k, (d, _) in after.items()} == {k: d for k, (d, _) in before.items()}


def test_a_plan_older_than_the_keyspace_is_refused(
        redis_client: redis.Redis, redis_url: str, policies: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    scenario.write(redis_client, scenario.keyspace())
    assert main(["plan", str(policies[0]), str(policies[1]), "--url", redis_url, "--json"]) == 0
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(capsys.readouterr().out)
    # after the plan was read, the old applications wrote many more banner keys
    redis_client.mset({f"shop:banner:late{i}": b"x" for i in range(200)})
    assert main(["apply", "--plan", str(plan_file), "--url", redis_url, "--yes"]) == 2
    err = capsys.readouterr().err
    assert "keyspace changed since the plan" in err and "banner" in err
    assert redis_client.exists("shop:banner:1", "shop:banner:late1") == 2
    # fewer keys than planned (some expired) is fine: the plan is still the one agreed to
    redis_client.delete(*[f"shop:banner:late{i}" for i in range(200)], "shop:banner:1")
    assert main(["apply", "--plan", str(plan_file), "--url", redis_url, "--yes"]) == 0
    assert redis_client.exists("shop:banner:2") == 0


def test_a_plan_of_other_policies_is_refused(
        redis_client: redis.Redis, redis_url: str, policies: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(policies[0]), str(policies[1]), "--url", redis_url, "--json"]) == 0
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(capsys.readouterr().out)
    policies[1].write_text(scenario.NEW.replace("ttl: 1h, stale: 10m", "ttl: 2h, stale: 10m"))
    assert main(["apply", "--plan", str(plan_file), "--url", redis_url, "--yes"]) == 2
    assert "other policies" in capsys.readouterr().err


def test_sigkill_mid_apply_then_a_rerun_gives_the_same_keyspace(
        redis_client: redis.Redis, redis_url: str, policies: tuple[Path, Path]) -> None:
    seeded = scenario.keyspace(scale=200)  # 6,000 banner keys
    scenario.write(redis_client, seeded)
    before = scenario.snapshot([redis_client])
    args = [str(policies[0]), str(policies[1]), "--url", redis_url]
    scenario.kill_mid_apply(args, redis_client.dbsize, seeded)
    scenario.check_applied(before, scenario.snapshot([redis_client]), seeded,
                           load_policy(policies[1]))
    again = subprocess.run([*scenario.CACHECTL, "apply", *args, "--yes", "--json"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert json.loads(again.stdout)["nothing_to_do"] is True


def test_apply_without_pexpire_lt_clamps_with_the_script(
        redis_client: redis.Redis, policies: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import cachectl.flush.run as run

    monkeypatch.setattr(run, "supports_pexpire_lt", lambda client, key: False)  # Redis 6
    seeded = scenario.keyspace()
    scenario.write(redis_client, seeded)
    before = scenario.snapshot([redis_client])
    old, new = _load(policies)
    result = apply_plan(redis_client, measure_plan(redis_client, diff_policies(old, new), old, new),
                        old, new)
    assert result.clamped is not None and result.clamped.changed == 62
    scenario.check_applied(before, scenario.snapshot([redis_client]), seeded, new)


def test_warm_fills_added_and_rekeyed_namespaces_first(
        redis_client: redis.Redis, redis_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    seeds = tmp_path / "promo.jsonl"
    seeds.write_text("".join(f'{{"id": {i}, "pct": {i}}}\n' for i in range(25)))
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(scenario.OLD)
    new.write_text(scenario.NEW.replace(
        'promo:   {key: "promo:{id}", ttl: 1h}',
        'promo:   {key: "promo:{id}", ttl: 1h, warm: {source: {type: jsonl, path: promo.jsonl}}}'))
    scenario.write(redis_client, scenario.keyspace())
    assert main(["apply", str(old), str(new), "--url", redis_url, "--yes", "--warm",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["warmed"]["written"] == 25
    assert redis_client.get("shop:promo:7") == b'{"id":7,"pct":7}'
    assert 0 < redis_client.pttl("shop:promo:7") <= 3_600_000


def test_a_plan_file_that_is_a_fifo_or_a_base_that_is_an_option_is_exit_2(
        redis_client: redis.Redis, redis_url: str, policies: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    scenario.write(redis_client, scenario.keyspace())
    before = redis_client.dbsize()
    fifo = tmp_path / "plan.json"
    os.mkfifo(fifo)  # opened, it would block until a writer came
    assert main(["apply", "--plan", str(fifo), "--url", redis_url, "--yes"]) == 2
    assert "cannot read plan" in capsys.readouterr().err
    # git would take a revision that starts with '-' for one of its options
    assert main(["plan", str(policies[1]), "--base=--output=stolen"]) == 2
    err = capsys.readouterr().err
    assert "error: --base '--output=stolen' is not a git revision" in err
    assert redis_client.dbsize() == before


def test_apply_reads_the_keyspace_once_and_audits_each_step(
        redis_client: redis.Redis, policies: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import cachectl.flush.run as run
    from cachectl.flush import read_history
    from cachectl.keyspace.matcher import glob_matcher

    walks: list[str] = []

    class Counted(run.ScanAhead):
        def __init__(self, nodes: list[object], match: str, count: Callable[[], int]) -> None:
            walks.append(match)
            super().__init__(nodes, match, count)

    monkeypatch.setattr(run, "ScanAhead", Counted)
    seeded = scenario.keyspace()
    scenario.write(redis_client, seeded)
    before = scenario.snapshot([redis_client])
    old, new = _load(policies)
    plan = measure_plan(redis_client, diff_policies(old, new), old, new)
    result = apply_plan(redis_client, plan, old, new)
    # one SCAN walk for the clamp and the three removals (it was one walk per target)
    assert len(walks) == 1
    assert all(glob_matcher(walks[0])(k) for k in seeded.removed | seeded.clamped)
    assert result.clamped is not None and result.clamped.changed == 62
    assert result.removed is not None and result.removed.changed == 120
    scenario.check_applied(before, scenario.snapshot([redis_client]), seeded, new)
    entries = read_history(redis_client, new)
    assert [(e.mode, e.changed) for e in entries] == [("hard", 120), ("clamp", 62)]


def test_an_interrupted_apply_reports_both_steps_and_a_rerun_finishes(
        redis_client: redis.Redis, policies: tuple[Path, Path]) -> None:
    from cachectl.errors import InterruptedWork
    from cachectl.plan import ApplyResult

    seeded = scenario.keyspace(scale=200)  # 6,000 banner keys
    scenario.write(redis_client, seeded)
    before = scenario.snapshot([redis_client])
    old, new = _load(policies)
    plan = measure_plan(redis_client, diff_policies(old, new), old, new)
    calls = iter(range(1_000_000))
    with pytest.raises(InterruptedWork) as info:
        apply_plan(redis_client, plan, old, new, batch=100, should_stop=lambda: next(calls) >= 3)
    partial = info.value.partial
    assert isinstance(partial, ApplyResult)
    assert partial.clamped is not None and partial.removed is not None
    assert partial.clamped.interrupted and partial.removed.interrupted
    done = partial.clamped.matched + partial.removed.matched
    assert 0 < done <= 400 and redis_client.dbsize() > len(before) - len(seeded.removed)
    again = measure_plan(redis_client, diff_policies(old, new), old, new)
    apply_plan(redis_client, again, old, new)
    scenario.check_applied(before, scenario.snapshot([redis_client]), seeded, new)
    assert apply_plan(redis_client, measure_plan(redis_client, diff_policies(old, new), old, new),
                      old, new).nothing_to_do


def test_measuring_for_a_plan_holds_the_server_in_short_calls(
        redis_client: redis.Redis, policies: tuple[Path, Path]) -> None:
    from cachectl.plan.measure import MEASURE_RUN_KEYS

    old, new = _load(policies)
    pipe = redis_client.pipeline(transaction=False)
    for i in range(30_000):
        pipe.set(f"shop:banner:{i}" if i % 3 else f"shop:product:{i}", b"v", px=5 * 3_600_000)
    pipe.execute()
    redis_client.config_resetstat()
    plan = measure_plan(redis_client, diff_policies(old, new), old, new, sample=2000)
    # the sample reads 5 x 2,000 keys from random cursors, at most MEASURE_RUN_KEYS per
    # script call (inspect reads 2,000 per call, and each call then holds Redis ~5 ms)
    calls = int(redis_client.info("commandstats")["cmdstat_evalsha"]["calls"])
    assert MEASURE_RUN_KEYS <= 500
    assert calls >= 10_000 // MEASURE_RUN_KEYS
    rows = {n.namespace: n.live for n in plan.namespaces}
    banner, product = rows["banner"], rows["product"]
    assert banner is not None and product is not None and plan.live_mode == "sample"
    assert abs(banner.keys - 20_000) <= banner.keys_margin + 200
    assert abs(product.ttl_above_max - 10_000) <= product.ttl_above_max_margin + 200
