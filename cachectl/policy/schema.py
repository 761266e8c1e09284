"""The policy's JSON Schema, generated from the model (never written by hand).

The model's types carry the structural rules lint enforces (unknown fields, required
fields, namespace names, positive durations, ratio ranges, warm-source options); this
module adds what the loader does before validation: any scalar value may be written as
``${VAR}`` / ``${VAR:-default}`` (never a mapping key), and a malformed ``${`` is CP405.
Rules a schema cannot state (overlapping templates, files on disk…) are listed in
docs/policy.md and checked by tests/unit/test_schema.py.
"""

from __future__ import annotations

import copy
from typing import Any

from cachectl.diagnostics import Code
from cachectl.policy.model import PolicySpec

SCHEMA_ID = "https://cachectl.dev/schema/policy.v1.json"

_VAR = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"
_TEXT = r"(\$\$\{|[^$]|\$(?!\{))"  # $${ is a literal ${
INTERPOLATED = {  # a value that is only known once the environment is read
    "type": "string", "pattern": rf"^({_TEXT}|{_VAR})*{_VAR}({_TEXT}|{_VAR})*$",
    "description": "${VAR} or ${VAR:-default}, interpolated from the environment."}
WELL_FORMED = {  # CP405: every ${ opens a ${VAR} or ${VAR:-default}
    "if": {"type": "string"}, "then": {"pattern": rf"^({_TEXT}|{_VAR})*$"}}
_KEEP = ("title", "description", "default")


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a version-1 policy file."""
    schema = PolicySpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "cachectl policy (version 1)"
    schema["properties"]["version"] = {"const": 1, "description": "Policy format version."}
    defs = schema.setdefault("$defs", {})
    for model in (schema, *defs.values()):
        for name, prop in model.get("properties", {}).items():
            model["properties"][name] = _interpolable(prop, defs)
    defs["interpolated"] = INTERPOLATED
    defs["well_formed"] = WELL_FORMED
    # CP103: without defaults.ttl, every namespace names its own
    schema["if"] = {"not": {"required": ["defaults"],
                            "properties": {"defaults": {"required": ["ttl"]}}}}
    schema["then"] = {"properties": {"namespaces": {"additionalProperties": {"required": ["ttl"]}}}}
    return schema


# Lint codes that are errors the schema cannot state, and why (docs/policy.md lists them;
# tests/unit/test_schema.py runs every lint case through both and checks this is the list)
LINT_ONLY = {
    Code.YAML_SYNTAX: "YAML syntax, encoding and a second document: the file is not one JSON value yet",
    Code.DUPLICATE_KEY: "a duplicate key: YAML loaders keep the last one before any schema sees it",
    Code.WRONG_TYPE: "YAML merge keys (<<), which loaders expand before any schema sees them",
    Code.UNSUPPORTED_TAG: "YAML tags, which exist only in the YAML text",
    Code.STALE_IF_ERROR_SHORTER_THAN_STALE:
        "stale_if_error >= stale compares two fields, possibly one from defaults",
    Code.TTL_BEYOND_REDIS:
        "the TTL Redis accepts bounds ttl with jitter and grace, from durations in text",
    Code.UNBALANCED_BRACES: "the key template grammar (braces, placeholders, segments)",
    Code.EMPTY_PLACEHOLDER: "the key template grammar (braces, placeholders, segments)",
    Code.DUPLICATE_PLACEHOLDER: "the key template grammar (braces, placeholders, segments)",
    Code.INVALID_TEMPLATE_SEGMENT: "the key template grammar (braces, placeholders, segments)",
    Code.UNKNOWN_PLACEHOLDER_MODIFIER: "the key template grammar (braces, placeholders, segments)",
    Code.OVERLAPPING_TEMPLATES: "two templates that can match one key: a relation between namespaces",
    Code.VERSION_WITHOUT_PLACE: "where a key version goes depends on the template's segments",
    Code.VERSIONS_OVERLAP: "two versions' templates overlapping: a relation between templates",
    Code.RESERVED_KEY_SPACE:
        "the reserved segment is judged on the parsed template, after the key prefix",
    Code.UNSET_ENV_VAR: "an unset variable depends on the environment lint runs in",
    Code.WARM_SOURCE_MISSING: "a warm source file that does not exist: the file system",
    Code.UNKNOWN_SOURCE_TYPE: "a source type no installed plugin provides: the installation",
    Code.WARM_ROW_CANNOT_FILL_TEMPLATE: "rows that cannot fill the template: the source's data",
    Code.LOOKUP_PARAMS_MISMATCH:
        "a lookup's parameters are read from its SQL or URL text and matched to the template",
}


def _interpolable(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``prop``, or ``${…}`` in its place, for a scalar; list items likewise; else unchanged."""
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
        return {**prop, "items": _interpolable(prop["items"], defs)}
    if not _scalar(prop, defs):
        return prop
    inner = {k: v for k, v in copy.deepcopy(prop).items() if k not in _KEEP}
    outer = {k: prop[k] for k in _KEEP if k in prop}
    return {**outer, "anyOf": [inner, {"$ref": "#/$defs/interpolated"}],
            "allOf": [{"$ref": "#/$defs/well_formed"}]}


def _scalar(schema: Any, defs: dict[str, Any]) -> bool:
    """Whether nothing in ``schema`` is an object or a list (references followed)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and not _scalar(defs.get(ref.rsplit("/", 1)[-1], {}), defs):
            return False
        if schema.get("type") in ("object", "array"):
            return False
        return all(_scalar(v, defs) for k, v in schema.items() if k != "$ref")
    if isinstance(schema, list):
        return all(_scalar(v, defs) for v in schema)
    return True
