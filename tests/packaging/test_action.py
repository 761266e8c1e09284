"""The composite GitHub Action (action.yml): its steps' commands, run as the runner runs them.

The install step runs once (into a fresh venv under RUNNER_TEMP, from this checkout, as
``uses: owner/repo@sha`` would); the lint step then runs per scenario, and its output
must be workflow commands (annotations), its exit code lint's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.checkout import clean_copy
from tests.support.sarif import validate_sarif

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
STEPS = ACTION["runs"]["steps"]
CASES = ROOT / "tests" / "lint_cases"
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


@dataclass
class StepRun:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


def _expand(value: str, inputs: dict[str, str], action_path: Path) -> str:
    """``${{ inputs.x }}`` and ``${{ github.action_path }}``, as the runner fills them in."""
    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("inputs."):
            key = name.removeprefix("inputs.")
            return inputs.get(key, ACTION["inputs"][key].get("default", ""))
        assert name == "github.action_path", f"action.yml uses {name}, which this test cannot fill"
        return str(action_path)
    return EXPRESSION.sub(fill, str(value))


def run_step(step: dict[str, Any], inputs: dict[str, str], runner_temp: Path,
             workspace: Path) -> StepRun:
    assert step["shell"] == "bash"
    output_file = runner_temp / f"output-{os.urandom(4).hex()}"
    output_file.touch()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"RUNNER_TEMP": str(runner_temp), "GITHUB_OUTPUT": str(output_file),
            "GITHUB_ACTIONS": "true"}
    # the runner checks the action's repository out on its own: a copy of this checkout
    action_path = runner_temp / "action"
    if not action_path.exists():
        clean_copy(action_path)
    env |= {k: _expand(v, inputs, action_path) for k, v in step.get("env", {}).items()}
    # GitHub runs a composite step's bash as `bash --noprofile --norc -eo pipefail {0}`
    script = runner_temp / "step.sh"
    script.write_text(step["run"])
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                          cwd=workspace, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    outputs = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if line)
    return StepRun(done.returncode, done.stdout, done.stderr, outputs)


def test_no_input_reaches_a_shell_unquoted() -> None:
    # expressions only in env:, never inside run: (a crafted input would be code)
    for step in STEPS:
        assert not EXPRESSION.search(step["run"]), step["name"]
    assert ACTION["runs"]["using"] == "composite"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runner_temp = tmp_path_factory.mktemp("runner-temp")
    install = next(s for s in STEPS if s["name"] == "Install cachectl")
    done = run_step(install, {}, runner_temp, tmp_path_factory.mktemp("workspace"))
    assert done.code == 0, done.stderr[-3000:]
    assert done.stdout.strip().startswith("cachectl ")
    return runner_temp


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    shutil.copy(ROOT / "policies" / "minimal.yaml", tmp_path / "policies" / "minimal.yaml")
    return tmp_path


def _lint(inputs: dict[str, str], runner_temp: Path, workspace: Path) -> StepRun:
    step = next(s for s in STEPS if s.get("id") == "lint")
    return run_step(step, inputs, runner_temp, workspace)


@pytest.mark.slow
def test_a_clean_policy_passes_with_no_annotations(installed: Path, workspace: Path) -> None:
    done = _lint({}, installed, workspace)  # the default paths: policies/
    assert done.code == 0, done.stderr
    assert done.stdout == "" and done.outputs["exit-code"] == "0"


@pytest.mark.slow
def test_findings_become_annotations_and_errors_fail(installed: Path, workspace: Path) -> None:
    shutil.copy(CASES / "023-stale-exceeds-ttl.yaml", workspace / "policies" / "warns.yaml")
    done = _lint({}, installed, workspace)
    assert done.code == 0  # a warning alone passes
    assert done.stdout.startswith("::warning file=policies/warns.yaml,line=7,col=12,title=CP104::")
    strict = _lint({"strict": "true"}, installed, workspace)
    assert (strict.code, strict.outputs["exit-code"]) == (1, "1")
    shutil.copy(CASES / "030-unbalanced-braces.yaml", workspace / "policies" / "broken.yaml")
    sarif = workspace / "out dir" / "cachectl.sarif"
    sarif.parent.mkdir()
    errors = _lint({"sarif": str(sarif)}, installed, workspace)
    assert errors.code == 1
    assert "::error file=policies/broken.yaml," in errors.stdout
    document = json.loads(sarif.read_text())
    validate_sarif(document)
    assert {r["ruleId"] for r in document["runs"][0]["results"]} == {"CP104", "CP201"}


@pytest.mark.slow
def test_a_missing_path_is_exit_2_and_writes_no_sarif(installed: Path, workspace: Path) -> None:
    sarif = workspace / "cachectl.sarif"
    done = _lint({"paths": "policies/ nosuch/", "sarif": str(sarif)}, installed, workspace)
    assert (done.code, done.outputs["exit-code"]) == (2, "2")
    assert "error:" in done.stderr and not sarif.exists()
