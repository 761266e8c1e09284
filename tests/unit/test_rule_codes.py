"""Rule codes: named by ``Code`` members, never renumbered, never reused, never typed as strings."""

from __future__ import annotations

import ast
import re
from itertools import groupby
from pathlib import Path

from cachectl.diagnostics import RETIRED, RULES, Code

PACKAGE = Path(__file__).resolve().parents[2] / "cachectl"
CODE_TEXT = re.compile(r"CP\d{3}")


def test_every_code_has_a_rule_or_is_retired_never_both() -> None:
    assert set(RULES) | RETIRED == set(Code)
    assert set(RULES) & RETIRED == set()


def test_codes_run_on_without_gaps_in_each_family() -> None:
    # a removed rule keeps its member (in RETIRED): deleting it instead leaves a gap here,
    # and giving its number to a new member fails at import (@unique)
    numbers = sorted(int(code.value[2:]) for code in Code)
    for family, members in groupby(numbers, key=lambda n: n // 100):
        found = list(members)
        assert found == list(range(family * 100 + 1, family * 100 + 1 + len(found))), family


def test_members_are_the_rules_kebab_names() -> None:
    for code, rule in RULES.items():
        assert CODE_TEXT.fullmatch(code.value)
        assert rule.name == code.name.lower().replace("_", "-")


def test_the_code_refers_to_rules_by_member_never_by_string() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        enum_values = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "Code":
                enum_values = {id(n.value) for n in node.body if isinstance(n, ast.Assign)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and CODE_TEXT.fullmatch(node.value) and id(node) not in enum_values):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert offenders == [], "use cachectl.diagnostics.Code members"
