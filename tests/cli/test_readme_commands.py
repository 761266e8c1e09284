"""Every cachectl command the README shows is a valid invocation of the current CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
_STOP = {"|", ";", ">", "<", "&&", "||", "2>&1"}


def _readme_commands() -> list[str]:
    found = []
    for block in re.findall(r"```(?:console|sh|bash|shell)\n(.*?)```", README, re.S):
        for line in block.splitlines():
            text = line.strip()
            if text.startswith("$ "):
                text = text[2:]
            elif not text.startswith("python3 -m venv"):
                continue
            for part in text.split("&&"):
                part = part.strip()
                if re.match(r"^(\S*/)?cachectl\s", part):
                    found.append(part)
    return found


COMMANDS = _readme_commands()


def test_the_readme_shows_every_command() -> None:
    shown = {shlex.split(c)[1] for c in COMMANDS}
    from cachectl.cli.app import built_commands

    assert set(built_commands()) - {"schema"} <= shown


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_parses(line: str) -> None:
    from typer._click.core import Context

    from cachectl.cli.app import build_command

    args: list[str] = []
    for token in shlex.split(line, comments=True)[1:]:
        if token in _STOP or token.startswith(("|", ">", "<")):
            break
        args.append(token)
    group = build_command()
    name, rest = args[0], args[1:]
    command = group.get_command(Context(group), name)
    assert command is not None, f"README shows unknown command: {line}"
    command.make_context(name, rest)  # raises a UsageError on any unknown or malformed option
