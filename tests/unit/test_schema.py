"""The JSON Schema: generated from the model, committed copy current, examples valid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from cachectl.policy.schema import policy_json_schema

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "schema" / "policy.v1.json"


def test_committed_schema_is_current() -> None:
    assert json.loads(COMMITTED.read_text()) == policy_json_schema(), (
        "run: cachectl schema -o schema/policy.v1.json")


def test_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(policy_json_schema())


@pytest.mark.parametrize("name", ["ecommerce.yaml", "minimal.yaml"])
def test_example_policies_validate_against_the_schema(name: str) -> None:
    text = (REPO / "policies" / name).read_text()
    assert text.startswith("# yaml-language-server: $schema=../schema/policy.v1.json")
    doc = yaml.safe_load(text)
    jsonschema.Draft202012Validator(policy_json_schema()).validate(doc)


def test_schema_rejects_typos_and_unknown_versions() -> None:
    validator = jsonschema.Draft202012Validator(policy_json_schema())
    bad_field = {"version": 1, "namespaces": {"a": {"key": "a:{id}", "tll": "1m"}}}
    assert any("tll" in e.message for e in validator.iter_errors(bad_field))
    assert list(validator.iter_errors({"version": 2}))
    assert not list(validator.iter_errors({"version": 1, "namespaces": {
        "a": {"key": "a:{id}", "ttl": "1h", "jitter": "10%", "max_value_bytes": "64KiB"}}}))


CASES = sorted((REPO / "tests" / "lint_cases").glob("*.yaml"))


def _schema_verdict(case: Path) -> bool | None:
    """Whether the schema accepts the case; None when it is not one YAML document of JSON values."""
    try:
        doc = yaml.safe_load(case.read_bytes())
    except yaml.YAMLError:
        return None
    return jsonschema.Draft202012Validator(policy_json_schema()).is_valid(doc)


def test_schema_and_lint_agree_on_every_case_but_the_documented_codes() -> None:
    from cachectl.diagnostics import Severity
    from cachectl.lint import lint_paths
    from cachectl.policy.schema import LINT_ONLY

    lint_only_seen: set[str] = set()
    disagreements = []
    for case in CASES:
        errors = {d.code for d in lint_paths([case], {}).diagnostics
                  if d.severity is Severity.ERROR}
        verdict = _schema_verdict(case)
        if verdict is (not errors):
            continue
        if not errors or not errors & set(LINT_ONLY):  # the schema refuses what lint accepts,
            disagreements.append((case.name, sorted(errors), verdict))  # or misses a rule
        lint_only_seen |= errors & set(LINT_ONLY)
    assert disagreements == []
    assert sorted(lint_only_seen) == sorted(LINT_ONLY)  # every listed code is still needed


def test_the_documented_difference_is_the_list() -> None:
    from cachectl.policy.schema import LINT_ONLY

    doc = (REPO / "docs" / "policy.md").read_text()
    section = doc.split("<!-- schema-differences -->")[1].split("<!-- /schema-differences -->")[0]
    assert sorted(set(re.findall(r"CP\d{3}", section))) == sorted(LINT_ONLY)


@pytest.mark.parametrize(("field", "value", "valid"), [
    ("ttl", "${TTL:-1h}", True), ("ttl", "x${A}y${B:-}", True), ("ttl", "${:1h}", False),
    ("ttl", "0s", False), ("ttl", -5, False), ("ttl", 1.5, True), ("stale", "0s", True),
    ("jitter", "100%", False), ("jitter", "0%", True), ("jitter", 0.99, True),
    ("hit_rate", 0, False), ("hit_rate", "100%", True), ("hit_rate", 1.01, False),
    ("max_value_bytes", "0KiB", False), ("tags", ["${TAG}"], True), ("critical", "${C}", True),
])
def test_schema_bounds_and_interpolation(field: str, value: object, valid: bool) -> None:
    doc = {"version": 1, "namespaces": {"a": {"key": "a:{id}", "ttl": "1h", field: value}}}
    assert jsonschema.Draft202012Validator(policy_json_schema()).is_valid(doc) is valid
