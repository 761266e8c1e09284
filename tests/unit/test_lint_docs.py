"""docs/policy.md and docs/lint.md stay true: tables generated, examples reproduced."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from pydantic import BaseModel

from cachectl.cli import main
from cachectl.lint import reference
from cachectl.policy.model import PolicySpec

REPO = Path(__file__).resolve().parents[2]
PAGES = {"policy": REPO / "docs" / "policy.md", "lint": REPO / "docs" / "lint.md"}


def section(name: str) -> str:
    m = re.search(rf"<!-- section:{name} -->(.*?)<!-- /section:{name} -->",
                  PAGES[name].read_text(), re.DOTALL)
    assert m, f"{PAGES[name].name} has no {name} section"
    return m.group(1)


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for info in model.model_fields.values():
        for arg in re.findall(r"cachectl\.policy\.model\.(\w+)", str(info.annotation)):
            import cachectl.policy.model as m

            sub = getattr(m, arg)
            if sub not in found:
                found |= _models(sub)
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and ann not in found:
            found |= _models(ann)
    return found


def test_field_table_is_current_and_covers_every_model() -> None:
    assert reference.policy_fields_markdown() in section("policy")
    covered = {spec for _, spec in reference._SECTIONS}
    assert _models(PolicySpec) <= covered
    listed = {path for path, *_ in reference.policy_fields()}
    for prefix, spec in reference._SECTIONS:
        for name in spec.model_fields:
            assert prefix + name in listed
            assert f"| `{prefix}{name}` |" in section("policy")


def test_rules_table_is_current() -> None:
    assert reference.rules_markdown() in section("lint")


CONSOLE_RE = re.compile(r"```console\n(.*?)```", re.DOTALL)


def console_examples() -> list[tuple[str, str]]:
    """(command, expected output) for each `$ cachectl lint …` in the lint section."""
    examples = []
    for block in CONSOLE_RE.findall(section("lint")):
        parts = re.split(r"^\$ ", block, flags=re.MULTILINE)
        for part in parts[1:]:
            command, _, output = part.partition("\n")
            examples.append((command, output))
    return examples


@pytest.mark.parametrize(("command", "output"), console_examples())
def test_lint_console_examples_are_real(
        command: str, output: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("REDIS_URL", raising=False)
    echo_exit = command.endswith('; echo "exit $?"')
    argv = shlex.split(command.removesuffix('; echo "exit $?"'))
    assert argv[0] == "cachectl"
    code = main(argv[1:])
    out = capsys.readouterr().out
    if echo_exit:
        out += f"exit {code}\n"
    assert out == output


def test_docs_explain_every_rule() -> None:
    from cachectl.diagnostics import RULES

    docs = (REPO / "docs" / "policy.md").read_text()
    for rule in RULES.values():
        assert rule.code in docs and rule.name in docs, rule.code
    for ref in re.findall(r"\[(\d{3}(?:, \d{3})*)\]", docs):
        for number in ref.split(", "):
            assert list((REPO / "tests" / "lint_cases").glob(f"{number}-*.yaml")), number


def test_the_policy_example_lints_clean() -> None:
    from cachectl.lint import lint_source

    (example,) = re.findall(r"```yaml\n(# yaml-language-server.*?)```", section("policy"), re.DOTALL)
    # its warm path is written as from policies/, like the example policies
    assert lint_source(example, "example.yaml", {}, REPO / "policies") == ()
