"""docs/cli.md is generated from every command's --help and kept current."""

from __future__ import annotations

from pathlib import Path

from tests.support.scripts import load_script

REPO = Path(__file__).resolve().parents[2]


def test_committed_cli_reference_is_current() -> None:
    reference = load_script("cli_reference")
    assert (REPO / "docs" / "cli.md").read_text() == reference.render(), (
        "run: .venv/bin/python scripts/cli_reference.py")


def test_the_reference_has_every_command() -> None:
    from cachectl.cli.app import built_commands

    page = (REPO / "docs" / "cli.md").read_text()
    for name in built_commands():
        assert f"## cachectl {name}\n" in page and f"Usage: cachectl {name} " in page, name
