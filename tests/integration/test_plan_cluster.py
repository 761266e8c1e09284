"""plan and apply on a real 3-primary Redis Cluster: exact counts over every primary, the
keyspace after apply, and a second apply with nothing to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachectl.cli import main
from cachectl.policy import load_policy
from tests.support import plan_scenario as scenario
from tests.support.cluster import RedisClusterFixture


def test_plan_and_apply_over_every_primary(clean_cluster: RedisClusterFixture, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(scenario.OLD)
    new.write_text(scenario.NEW)
    seeded = scenario.keyspace()
    router = clean_cluster.client()
    scenario.write(router, seeded)
    assert len({router.get_node_from_key(k).port for k in seeded.removed}) == 3
    nodes = [s.client() for s in clean_cluster.primary_servers()]
    before = scenario.snapshot(nodes)
    base = [str(old), str(new), "--url", clean_cluster.url, "--cluster"]
    assert main(["plan", *base, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    live = {r["namespace"]: (r["live"]["keys"], r["live"]["ttl_above_max"])
            for r in doc["namespaces"]}
    assert live == {"product": (102, 62), "search": (50, 0), "price": (40, 0),
                    "basket": (20, 0), "stock": (25, 0), "session": (10, 0), "promo": (0, 0),
                    "banner": (30, 0)}
    assert main(["apply", *base, "--yes", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["clamped"]["clamped"] == 62 and done["removed"]["removed"] == 120
    scenario.check_applied(before, scenario.snapshot(nodes), seeded, load_policy(new))
    assert main(["apply", *base, "--yes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nothing_to_do"] is True


def test_sigkill_mid_apply_on_a_cluster_then_a_rerun_finishes(
        clean_cluster: RedisClusterFixture, tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(scenario.OLD)
    new.write_text(scenario.NEW)
    seeded = scenario.keyspace(scale=200)  # 6,000 banner keys over three primaries
    scenario.write(clean_cluster.client(), seeded)
    nodes = [s.client() for s in clean_cluster.primary_servers()]
    before = scenario.snapshot(nodes)
    scenario.kill_mid_apply([str(old), str(new), "--url", clean_cluster.url, "--cluster"],
                            lambda: sum(int(n.dbsize()) for n in nodes), seeded)
    scenario.check_applied(before, scenario.snapshot(nodes), seeded, load_policy(new))
