"""The one error boundary: exit codes, --debug anywhere, broken pipes, --version, help examples."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cachectl import __version__
from cachectl.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cachectl {__version__}"


def test_unknown_command_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_missing_policy_is_exit_2_with_a_hint(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    code = main(["flush", "--policy", str(tmp_path / "nope.yaml"), "--namespace", "x", "--yes"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: policy file") and "hint:" in err
    assert "Traceback" not in err


def test_debug_is_accepted_after_the_command(tmp_path: Path) -> None:
    from cachectl.errors import PolicyError

    with pytest.raises(PolicyError):
        main(["flush", "--policy", str(tmp_path / "nope.yaml"), "-n", "x", "--yes", "--debug"])


@pytest.mark.parametrize("args", [["lint", "--list-rules"], ["schema"],
                                  ["lint", "policies/", "--format", "json"]])
def test_a_closed_stdout_is_not_an_error(args: list[str]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "cachectl", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    with proc.stderr:
        code = proc.wait(60)
        assert proc.stderr.read() == b""
    assert code == 0


def test_every_command_has_help_with_an_example() -> None:
    from cachectl.cli.app import built_commands

    for name in built_commands():
        module = importlib.import_module(f"cachectl.cli.{name}")
        doc = module.command.__doc__ or ""
        assert "Example:" in doc, f"cachectl {name} --help has no example"


def test_schema_takes_json_like_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from cachectl.policy.schema import policy_json_schema

    assert main(["schema", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == policy_json_schema()


def test_every_command_takes_json() -> None:
    # the README promises it: a new command without --json fails here
    from typer._click.core import Context

    from cachectl.cli.app import build_command

    group = build_command()
    missing = [name for name in group.list_commands(Context(group))
               if "--json" not in {o for p in group.get_command(Context(group), name).params
                                   for o in getattr(p, "opts", [])}]
    assert missing == []


def test_ctrl_c_inside_a_command_says_interrupted_and_exits_130(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Typer turns a KeyboardInterrupt into a silent Exit(130); the user still reads why."""
    import cachectl.lint

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cachectl.lint, "lint_paths", interrupted)
    policy = tmp_path / "cachectl.yaml"
    policy.write_text("version: 1\nnamespaces: {}\n")
    assert main(["lint", str(policy)]) == 130
    err = capsys.readouterr().err
    assert "error: interrupted\n" in err
    assert "hint: whatever was written is complete; rerun to finish\n" in err
