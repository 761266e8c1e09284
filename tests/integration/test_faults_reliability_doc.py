"""docs/reliability.md covers every scenario the tests declare and record, and nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

from tests.support.scripts import load_script

REPO = Path(__file__).resolve().parents[2]


def _report() -> ModuleType:
    return load_script("reliability_report")


def _doc_ids() -> set[str]:
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE))


def test_every_declared_scenario_has_a_row_and_every_row_a_test() -> None:
    patterns = _report().declared_ids()
    assert patterns, "no scenario declared in the tests"
    ids = _doc_ids()
    for pattern in patterns:
        assert any(pattern.fullmatch(i) for i in ids), f"no row for {pattern.pattern}"
    for i in ids:
        assert any(p.fullmatch(i) for p in patterns), f"stale row {i}: no test declares it"


def test_every_recorded_scenario_is_in_the_doc() -> None:
    report = _report()
    recorded = report.load_records()
    declared = report.declared_ids()
    ids = _doc_ids()
    # records from this or earlier runs of tests that still exist
    live = {i for i in recorded if any(p.fullmatch(i) for p in declared)}
    assert live <= ids, f"recorded but missing from docs/reliability.md: {sorted(live - ids)}"


def test_render_is_deterministic_and_escapes_cells() -> None:
    report = _report()
    rec = {"id": "x", "area": "one server", "fault": "a | b", "command": "flush",
           "did": "exit 3", "verified": "ok", "test": "t", "recorded_at": 1.0}
    patterns = [re.compile("x")]
    text = report.render({"x": rec}, patterns)
    assert text == report.render({"x": dict(rec)}, patterns)
    assert "a \\| b" in text and "## Faults on one server" in text
    assert report.render({"y": {**rec, "id": "y"}}, patterns).count("| `") == 0


def test_the_committed_doc_is_what_the_generator_renders_from_it() -> None:
    report = _report()
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert report.render(report.doc_records(text), report.declared_ids()) == text


def test_a_partial_run_updates_its_rows_and_keeps_the_others(tmp_path: Path) -> None:
    report = _report()
    doc = tmp_path / "reliability.md"
    committed = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    doc.write_text(committed, encoding="utf-8")
    some_id = sorted(_doc_ids())[0]
    old = report.doc_records(committed)[some_id]
    records = tmp_path / "records"
    records.mkdir()
    rec = {**old, "did": "did it again", "test": "t", "recorded_at": 2.0}
    # the second line is still being written by another test worker: not read
    (records / "gw0.jsonl").write_text(json.dumps(rec) + "\n" + '{"id": "half', encoding="utf-8")
    assert report.main(["--records", str(records), "--out", str(doc)]) == 0
    rows = report.doc_records(doc.read_text(encoding="utf-8"))
    assert set(rows) == _doc_ids()  # no row dropped
    assert rows[some_id]["did"] == "did it again"
    assert report.main(["--records", str(records), "--out", str(doc), "--prune"]) == 0
    assert set(report.doc_records(doc.read_text(encoding="utf-8"))) == {some_id}
