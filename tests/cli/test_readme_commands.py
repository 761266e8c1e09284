"""Every cachectl command the README and docs/ show is a valid invocation of the current CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
PAGES = [README] + [p.read_text(encoding="utf-8") for p in sorted((REPO / "docs").glob("*.md"))]
_STOP = {"|", ";", ">", "<", "&&", "||", "2>&1"}


def _readme_commands() -> list[str]:
    found = []
    blocks = [b for page in PAGES for b in re.findall(r"```(?:console|sh|bash|shell)\n(.*?)```", page, re.S)]
    for block in blocks:
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


def test_the_docs_show_every_command_and_the_readme_tours_it() -> None:
    shown = {shlex.split(c)[1] for c in COMMANDS}
    from cachectl.cli.app import built_commands

    assert set(built_commands()) - {"schema"} <= shown
    toured = set(re.findall(r"^\| `cachectl (\w+)", README, re.M))
    assert set(built_commands()) <= toured


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
    assert command is not None, f"the docs show an unknown command: {line}"
    command.make_context(name, rest)  # raises a UsageError on any unknown or malformed option
