"""The JSON Schema: generated from the model, committed copy current, examples valid."""

from __future__ import annotations

import json
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
