"""The broken-policy corpus: each file in tests/lint_cases/ states the findings it must produce.

A case starts with ``# expect: CODE line:col`` lines (several allowed); linting it must
produce exactly that set of code+line+col, no more, no fewer.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from cachectl.diagnostics import RULES
from cachectl.lint import lint_paths
from cachectl.policy.loader import MAX_FILE_BYTES

CASES = Path(__file__).resolve().parents[1] / "lint_cases"
LINT_DOC = Path(__file__).resolve().parents[2] / "docs" / "lint.md"
EXPECT_RE = re.compile(rb"^# expect: (CP\d{3}) (\d+):(\d+)\s*$", re.MULTILINE)
# ``# without: PACKAGE``: the case is linted as if that package were not installed
WITHOUT_RE = re.compile(rb"^# without: ([\w.]+)\s*$", re.MULTILINE)
CASE_FILES = sorted(CASES.glob("*.yaml"))
# the environment the corpus is linted with: every ${VAR} a case uses is unset
ENV: dict[str, str] = {}

Finding = tuple[str, int, int]


def expected(path: Path) -> set[Finding]:
    return {(code.decode(), int(line), int(col))
            for code, line, col in EXPECT_RE.findall(path.read_bytes())}


def found(path: Path) -> set[Finding]:
    report = lint_paths([path], ENV)
    assert all(d.span.path == str(path) for d in report.diagnostics)
    return {(d.code, d.span.line, d.span.col) for d in report.diagnostics}


def test_the_corpus_is_large_enough() -> None:
    assert len(CASE_FILES) >= 45


@pytest.mark.parametrize("case", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_lint_case(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for package in WITHOUT_RE.findall(case.read_bytes()):
        monkeypatch.setitem(sys.modules, package.decode(), None)  # import raises ImportError
    want = expected(case)
    assert want, f"{case.name} has no '# expect: CODE line:col' header"
    assert found(case) == want


def test_every_rule_has_a_case() -> None:
    covered = {code for case in CASE_FILES for code, _, _ in expected(case)}
    assert sorted(set(RULES) - covered) == []


def test_every_rule_has_a_docs_row() -> None:
    text = LINT_DOC.read_text()
    for rule in RULES.values():
        row = f"| {rule.code} | {rule.name} | {rule.severity.value} |"
        assert row in text, f"docs/lint.md rules table lacks {rule.code}"


def test_a_ten_megabyte_policy_is_refused_at_line_one(tmp_path: Path) -> None:
    big = tmp_path / "huge.yaml"
    line = b"# " + b"x" * 1021 + b"\n"
    with big.open("wb") as fh:
        fh.write(b"version: 1\nnamespaces:\n  product: {key: 'product:{id}', ttl: 1h}\n")
        for _ in range(10 * 1024):
            fh.write(line)
    assert big.stat().st_size > 10 * 1024 * 1024 > MAX_FILE_BYTES
    assert found(big) == {("CP007", 1, 1)}


def test_a_zero_byte_file_is_an_empty_policy(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_bytes(b"")
    assert found(empty) == {("CP008", 1, 1)}


def test_the_binary_case_really_is_binary() -> None:
    data = (CASES / "003-binary-junk.yaml").read_bytes()
    assert b"\x00" in data
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
