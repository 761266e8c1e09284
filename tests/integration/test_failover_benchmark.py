"""benchmarks/failover.py on a real Sentinel deployment, its figures recorded in
docs/reliability.md: cachectl.Cache under steady traffic while the primary is killed
(SIGKILL) and, separately, moved with SENTINEL FAILOVER."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.reliability import Recorder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import failover  # benchmarks/ is not a package: found through sys.path

# the goal is 1 s; a loaded CI host stretches everything, and a library that never
# follows the switch would never write again: this bound tells the two apart
RESUME_BOUND_S = 5.0


@pytest.mark.slow
def test_reads_never_fail_and_writes_resume_when_the_primary_is_killed(
        tmp_path: Path, reliability: Recorder) -> None:
    r = failover.measure("kill", tmp_path)
    assert r.read_errors == 0 and r.reads_wrong == 0, r
    assert r.reads_without_redis > 0, r  # the gap was real, and reads were answered through it
    assert r.writes_refused > 0 and r.write_gap_s >= r.promoted_s - 0.5, r
    assert 0 <= r.writes_resumed_after_promotion_s <= RESUME_BOUND_S, r
    reliability.add(
        "sentinel-failover-kill-under-traffic", area="sentinel",
        fault="the primary SIGKILLed while Cache serves reads (L1 on) and writes every 5 ms; "
        f"{failover.settings_text('kill')}",
        command="benchmarks/failover.py",
        did=f"promoted {r.promoted_s:.2f} s after the kill; write gap {r.write_gap_s:.2f} s "
        f"(last write before to first after); writes resumed "
        f"{r.writes_resumed_after_promotion_s:.2f} s after the promotion (goal 1 s); "
        f"{r.reads} reads, {r.reads_without_redis} answered without Redis",
        verified=f"no read raised or returned a wrong value; {r.writes_refused} writes refused "
        f"(set returned False) during the gap; {r.writes_lost} of {r.writes_acked} "
        "acknowledged writes missing on the new primary")


@pytest.mark.slow
def test_reads_never_fail_through_a_planned_sentinel_failover(
        tmp_path: Path, reliability: Recorder) -> None:
    r = failover.measure("failover", tmp_path)
    assert r.read_errors == 0 and r.reads_wrong == 0, r
    assert r.writes_refused == 0, r  # the old primary takes writes until the client follows
    assert r.first_write_after_s <= RESUME_BOUND_S, r
    lost = (f"{r.writes_lost} of {r.writes_acked} acknowledged writes lost: the demoted "
            f"primary acknowledged them after the replica was promoted (the last "
            f"{r.last_lost_s:.2f} s after SENTINEL FAILOVER)" if r.writes_lost else
            f"none of {r.writes_acked} acknowledged writes lost")
    reliability.add(
        "sentinel-failover-planned-under-traffic", area="sentinel",
        fault="SENTINEL FAILOVER while Cache serves reads (L1 on) and writes every 5 ms; "
        f"{failover.settings_text('failover')}",
        command="benchmarks/failover.py",
        did=f"promoted {r.promoted_s:.2f} s after the command; write gap "
        f"{r.write_gap_s:.2f} s; {r.reads} reads, {r.reads_without_redis} without Redis",
        verified=f"no read raised or returned a wrong value; no write refused; {lost}")


@pytest.mark.slow
def test_reads_never_fail_when_a_cluster_primary_is_killed(
        tmp_path: Path, reliability: Recorder) -> None:
    r = failover.measure("cluster-kill", tmp_path)
    assert r.read_errors == 0 and r.reads_wrong == 0, r
    assert r.reads_without_redis > 0, r
    assert 0 <= r.writes_resumed_after_promotion_s <= RESUME_BOUND_S, r
    reliability.add(
        "cluster-failover-kill-under-traffic", area="cluster",
        fault="one primary of 3 SIGKILLed while Cache serves reads (L1 on) and writes every "
        f"5 ms; {failover.settings_text('cluster-kill')}",
        command="benchmarks/failover.py",
        did=f"its replica promoted {r.promoted_s:.2f} s after the kill; write gap on its "
        f"slots {r.write_gap_s:.2f} s; writes there resumed "
        f"{r.writes_resumed_after_promotion_s:.2f} s after the promotion (goal 1 s); "
        f"{r.reads} reads, {r.reads_without_redis} answered without Redis",
        verified=f"no read raised or returned a wrong value; {r.writes_refused} writes to its "
        f"slots refused during the gap; {r.writes_lost} of {r.writes_acked} acknowledged "
        "writes to its slots missing afterwards" + (
            f" (the last acknowledged {r.last_lost_s:+.2f} s from the kill: Redis replicates "
            "asynchronously)" if r.last_lost_s is not None else ""))
