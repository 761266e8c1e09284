"""free_port: a port one test process claimed is never handed to another (xdist workers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


def test_a_port_held_here_is_refused_to_another_process() -> None:
    held = free_port()
    # the other process is offered our port first (twice), then whatever its generator picks
    code = ("from tests.support import redis_server as r; "
            f"offers = iter([{held}, {held}]); pick = r._rng.choice; "
            "r._rng.choice = lambda ports: next(offers, None) or pick(ports); "
            "print(r.free_port(), next(offers, 'both offers taken'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, text=True,
                         capture_output=True, check=True, timeout=60)
    port, note = out.stdout.split(maxsplit=1)
    assert note.strip() == "both offers taken"
    assert int(port) != held


def test_ports_are_distinct_loopback_ports_never_6379() -> None:
    ports = [free_port() for _ in range(40)]  # fewer than one process holds at once
    assert len(set(ports)) == 40 and 6379 not in ports
