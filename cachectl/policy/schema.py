"""The policy's JSON Schema, generated from the model (never written by hand)."""

from __future__ import annotations

from typing import Any

from cachectl.policy.model import PolicySpec

SCHEMA_ID = "https://cachectl.dev/schema/policy.v1.json"


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a version-1 policy file."""
    schema = PolicySpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "cachectl policy (version 1)"
    schema["properties"]["version"] = {"const": 1, "description": "Policy format version."}
    return schema
