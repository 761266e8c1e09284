"""cachectl lint end to end: every format, every exit code, the rule list, the examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cachectl.cli import main
from cachectl.diagnostics import RULES
from tests.support.sarif import validate_sarif

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "lint_cases"

CLEAN = 'version: 1\nnamespaces:\n  product: {key: "product:{id}", ttl: 10m}\n'
WARNS = 'version: 1\nnamespaces:\n  stock: {key: "stock:{sku}", ttl: 30s, stale: 5m}\n'
ERRORS = 'version: 1\nnamespaces:\n  product: {key: "product:{id", ttl: 10m}\n'



@pytest.fixture
def policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name, text in (("clean.yaml", CLEAN), ("warns.yaml", WARNS), ("errors.yaml", ERRORS)):
        (tmp_path / name).write_text(text)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["lint", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_clean_policy_exits_0_with_a_summary(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "clean.yaml") == (0, "1 file checked, no findings\n", "")


def test_text_format_is_file_line_col_code_severity_message_and_hint(
        policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "errors.yaml")
    assert code == 1
    assert out == (
        "errors.yaml:3:18: CP201 error namespace product: key 'product:{id': a '{' is never closed\n"
        "0 errors, 0 warnings in 1 file\n".replace("0 errors, 0 warnings", "1 error, 0 warnings"))
    assert "\x1b[" not in out  # plain when piped


def test_warnings_pass_unless_strict(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "warns.yaml")
    assert code == 0
    assert out.splitlines() == [
        "warns.yaml:3:48: CP104 warning namespace stock: stale 5m is longer than ttl 30s",
        "    hint: keys would be served stale longer than fresh; raise ttl or shorten stale",
        "0 errors, 1 warning in 1 file",
    ]
    code, out, _ = run(capsys, "--strict", "warns.yaml")
    assert code == 1
    assert out.splitlines()[-1] == "0 errors, 1 warning in 1 file (warnings fail under --strict)"


def test_folders_are_searched_recursively_skipping_hidden_ones(
        policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (policies / "nested" / "deeper").mkdir(parents=True)
    (policies / "nested" / "deeper" / "more.yml").write_text(WARNS)
    (policies / ".hidden").mkdir()
    (policies / ".hidden" / "broken.yaml").write_text(ERRORS)
    (policies / "notes.txt").write_text(ERRORS)
    code, out, _ = run(capsys, "--format", "json", ".")
    doc = json.loads(out)
    assert code == 1
    assert doc["files"] == ["clean.yaml", "errors.yaml", "nested/deeper/more.yml", "warns.yaml"]


def test_json_format_shape(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--format", "json", "warns.yaml", "errors.yaml")
    assert (code, err) == (1, "")
    doc = json.loads(out)
    assert doc["version"] == 1
    assert doc["summary"] == {"files": 2, "errors": 1, "warnings": 1, "strict": False, "failed": True}
    assert doc["diagnostics"][0] == {
        "path": "warns.yaml", "line": 3, "col": 48, "code": "CP104", "name": "stale-exceeds-ttl",
        "severity": "warning", "message": "namespace stock: stale 5m is longer than ttl 30s",
        "hint": "keys would be served stale longer than fresh; raise ttl or shorten stale"}
    assert [d["code"] for d in doc["diagnostics"]] == ["CP104", "CP201"]
    code2, out2, _ = run(capsys, "--json", "warns.yaml", "errors.yaml")
    assert (code2, out2) == (code, out)


def test_sarif_format_is_valid_for_code_scanning(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--format", "sarif", "warns.yaml", "errors.yaml")
    assert (code, err) == (1, "")
    doc = json.loads(out)
    validate_sarif(doc)
    run_ = doc["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    results = run_["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("CP104", "warning"), ("CP201", "error")]
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
    loc = results[1]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "errors.yaml", "uriBaseId": "%SRCROOT%"}
    assert loc["region"] == {"startLine": 3, "startColumn": 18}


def test_sarif_of_a_clean_run_has_no_results(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-f", "sarif", "clean.yaml")
    assert code == 0
    doc = json.loads(out)
    validate_sarif(doc)
    assert doc["runs"][0]["results"] == []


def test_github_format_emits_workflow_annotations(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--format", "github", "warns.yaml", "errors.yaml")
    assert code == 1
    assert out.splitlines() == [
        "::warning file=warns.yaml,line=3,col=48,title=CP104::namespace stock: stale 5m is longer "
        "than ttl 30s%0Ahint: keys would be served stale longer than fresh; raise ttl or shorten stale",
        "::error file=errors.yaml,line=3,col=18,title=CP201::namespace product: key 'product:{id': "
        "a '{' is never closed",
    ]
    assert err == "1 error, 1 warning in 2 files\n"


def test_github_escapes_properties_and_data() -> None:
    from cachectl.diagnostics import Span, make
    from cachectl.render.github import format_annotation

    d = make("CP004", "100% wrong\nreally", Span("a,b:c.yaml", 2, 3))
    assert format_annotation(d) == (
        "::error file=a%2Cb%3Ac.yaml,line=2,col=3,title=CP004::100%25 wrong%0Areally")


def test_output_file(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-f", "sarif", "-o", "report.sarif", "errors.yaml")
    assert (code, out) == (1, "")
    assert err == "1 error, 0 warnings in 1 file\n"
    assert json.loads((policies / "report.sarif").read_text())["runs"][0]["results"][0]["ruleId"] == "CP201"
    code, _, err = run(capsys, "-o", str(policies / "no" / "such" / "dir" / "x"), "errors.yaml")
    assert code == 2 and err.startswith("error: cannot write")


def test_missing_path_is_exit_2_with_a_clear_message(
        policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "clean.yaml", "nope.yaml")
    assert (code, out) == (2, "")
    assert err == ("error: nope.yaml: no such file or folder\n"
                   "hint: check the path; lint takes policy files and folders\n")


def test_no_path_and_bad_flags_are_exit_2(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "give at least one policy file" in err
    code, _, err = run(capsys, "--format", "xml", "clean.yaml")
    assert code == 2 and "xml" in err
    (policies / "empty").mkdir()
    code, _, err = run(capsys, "empty")
    assert code == 2 and "no policy files" in err


def test_unreadable_file_is_exit_2(
        policies: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = Path.open

    def deny(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "clean.yaml":  # chmod 0 does not stop root, so refuse here
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", deny)
    code, out, err = run(capsys, "clean.yaml")
    assert (code, out) == (2, "")
    assert err == "error: cannot read policy file clean.yaml: Permission denied\n"


def test_list_rules_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--list-rules")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["code", "name", "severity", "summary"]
    assert len(lines) == len(RULES) + 1
    assert lines[1].split()[:3] == ["CP001", "yaml-syntax", "error"]
    code, out, _ = run(capsys, "--list-rules", "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert [r["code"] for r in doc] == list(RULES)
    assert doc[0] == {"code": "CP001", "name": "yaml-syntax", "severity": "error",
                      "summary": RULES["CP001"].summary}


def test_env_interpolation_comes_from_the_process_environment(
        policies: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (policies / "env.yaml").write_text(
        'version: 1\nredis: {url: "${CACHECTL_TEST_URL}"}\nnamespaces:\n  a: {key: "a:{id}", ttl: 1m}\n')
    monkeypatch.delenv("CACHECTL_TEST_URL", raising=False)
    assert run(capsys, "env.yaml")[0] == 1
    monkeypatch.setenv("CACHECTL_TEST_URL", "redis://localhost:6379/0")
    assert run(capsys, "env.yaml")[0] == 0


def test_secrets_are_never_printed(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (policies / "secret.yaml").write_text(
        'version: 1\nredis: {url: "http://u:hunter2@host"}\nnamespaces:\n  a: {key: "a:{id}", ttl: 1m}\n')
    for fmt in ("text", "json", "sarif", "github"):
        code, out, err = run(capsys, "-f", fmt, "secret.yaml")
        assert code == 1
        assert "hunter2" not in out + err
        assert "CP406" in out and "CP407" in out


def test_example_policies_lint_clean(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("REDIS_URL", raising=False)
    code, out, _ = run(capsys, "--strict", "policies/")
    assert (code, out) == (0, "2 files checked, no findings\n")


def test_the_corpus_fails_as_a_whole(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lz4", None)  # as 073-codec-not-installed says
    code, out, _ = run(capsys, "--format", "json", str(CASES))
    doc = json.loads(out)
    assert code == 1
    assert doc["summary"]["files"] == len(list(CASES.glob("*.yaml")))
    assert {d["code"] for d in doc["diagnostics"]} == set(RULES)


def test_console_script_colours_only_on_a_terminal(policies: Path) -> None:
    exe = Path(sys.executable).parent / "cachectl"
    piped = subprocess.run([str(exe), "lint", "errors.yaml"], capture_output=True, text=True,
                           cwd=policies, check=False)
    assert piped.returncode == 1
    assert "\x1b[" not in piped.stdout
    assert piped.stdout.startswith("errors.yaml:3:18: CP201 error")


def test_rich_text_renderer_colours_when_asked() -> None:
    import io

    from cachectl.lint import lint_source
    from cachectl.lint.report import LintReport
    from cachectl.render.lint_text import render_text

    report = LintReport(("e.yaml",), lint_source(ERRORS, "e.yaml", {}))
    buf = io.StringIO()
    render_text(report, buf, color=True)
    text = buf.getvalue()
    assert "\x1b[" in text
    assert "CP201" in text and "1 error, 0 warnings in 1 file" in text


def test_dangling_symlink_is_exit_2(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (policies / "gone.yaml").symlink_to(policies / "deleted.yaml")
    code, out, err = run(capsys, "gone.yaml")
    assert (code, out) == (2, "")
    assert err.startswith("error: gone.yaml: no such file or folder")
