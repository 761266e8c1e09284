"""Record each fault / bad-input scenario a test verified, for ``docs/reliability.md``.

A test takes the ``reliability`` fixture (tests/conftest.py) and, after its assertions, calls
``reliability.add(<a string literal id>, fault=..., did=..., ...)``. Only a
test that got that far (so its assertions held) records anything. Records go to
``build/reliability/<worker>.jsonl``; ``scripts/reliability_report.py`` renders them.
The first argument must be a string literal: ``test_reliability_doc`` finds every id
in the test sources and checks the committed doc has a row for each.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECORDS_DIR = REPO / "build" / "reliability"

_VOLATILE = [
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"localhost:\d+"), "localhost:PORT"),
    (re.compile(r"/tmp/\S+"), "/tmp/…"),
]


def normalize(text: str) -> str:
    """Drop what changes from run to run (ports, temp paths), and keep one line."""
    text = " ".join(text.split())
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


@dataclass(frozen=True)
class Scenario:
    id: str
    area: str
    fault: str
    command: str
    did: str
    verified: str
    test: str
    recorded_at: float


class Recorder:
    def __init__(self, test: str) -> None:
        self.test = test
        self.scenarios: list[Scenario] = []

    def add(self, scenario_id: str, *, area: str, fault: str, command: str, did: str,
            verified: str) -> None:
        if any(s.id == scenario_id for s in self.scenarios):
            return  # once per test (a hypothesis test calls this for every example)
        self.scenarios.append(Scenario(scenario_id, area, normalize(fault), command,
                                       normalize(did), normalize(verified), self.test,
                                       time.time()))

    def save(self) -> None:
        """Append the recorded scenarios to this worker's ``build/reliability/*.jsonl``."""
        if not self.scenarios:
            return
        RECORDS_DIR.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with (RECORDS_DIR / f"{worker}.jsonl").open("a", encoding="utf-8") as out:
            for scenario in self.scenarios:
                out.write(json.dumps(asdict(scenario), sort_keys=True) + "\n")


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch | None = None,
            env: dict[str, str | None] | None = None) -> CliRun:
    """Run ``cachectl`` in-process; return its exit code and what it printed."""
    from cachectl.cli import main

    if env:
        assert monkeypatch is not None
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return CliRun(code, captured.out, captured.err)


def assert_no_traceback(run: CliRun) -> None:
    assert "Traceback" not in run.text, run.text
    assert run.code != 70, run.text
