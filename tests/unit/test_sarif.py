"""SARIF artifact URIs are percent-encoded references against %SRCROOT% that lead back to the file."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urljoin
from urllib.request import url2pathname

import jsonschema
import pytest

from cachectl.lint import lint_paths
from cachectl.render.sarif import sarif_document
from tests.support.sarif import validate_sarif

CASE = Path(__file__).resolve().parents[1] / "lint_cases" / "023-stale-exceeds-ttl.yaml"
NAMES = ["a b.yaml", "ü.yaml", "p%41.yaml", "plain#1.yaml", "q?x.yaml", "c:d.yaml",
         "sub dir/[x].yaml"]


@pytest.mark.parametrize("name", NAMES)
def test_sarif_uri_is_an_encoded_reference_to_the_very_file(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(CASE, target)
    monkeypatch.chdir(tmp_path)
    doc = sarif_document(lint_paths([name], env={}), root=tmp_path)
    validate_sarif(doc)
    run = doc["runs"][0]
    (result,) = run["results"]
    location = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uriBaseId"] == "%SRCROOT%"
    assert unquote(location["uri"]) == name
    base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    resolved = urljoin(base, location["uri"])
    assert resolved.startswith("file:///") and "#" not in resolved and "?" not in resolved
    assert Path(url2pathname(resolved.removeprefix("file://"))) == target
    assert run["artifacts"] == [{"location": location}]


def test_a_file_outside_the_root_gets_an_absolute_file_uri(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "x y.yaml"
    outside.parent.mkdir()
    shutil.copy(CASE, outside)
    (tmp_path / "root").mkdir()
    doc = sarif_document(lint_paths([outside], env={}), root=tmp_path / "root")
    validate_sarif(doc)
    location = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": outside.as_uri()} and "%20" in location["uri"]


def test_the_validator_rejects_a_raw_file_name_as_uri(tmp_path: Path) -> None:
    shutil.copy(CASE, tmp_path / "a.yaml")
    doc = sarif_document(lint_paths([tmp_path / "a.yaml"], env={}), root=tmp_path)
    doc["runs"][0]["artifacts"][0]["location"]["uri"] = "a b.yaml"  # what cachectl wrote before
    with pytest.raises(jsonschema.ValidationError, match="uri-reference"):
        validate_sarif(doc)
