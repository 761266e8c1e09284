"""The built-in warm readers' options, as cachectl.warm.sources checks them.

Lint (CP003, CP005) and the policy's JSON Schema both read this table; the readers
themselves (cachectl/warm/sources/*.py) pass the same names to ``check_options``.
"""

from __future__ import annotations

from typing import Any

BUILTIN_TYPES = ("jsonl", "json", "csv", "sql", "http")
# (required, optional) options of each built-in reader
BUILTIN_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "jsonl": (("path",), ()),
    "json": (("path",), ("items",)),
    "csv": (("path",), ("columns", "delimiter")),
    "sql": (("url", "query"), ("params", "batch_size", "lookup", "connect_timeout",
                               "statement_timeout")),
    "http": (("url",), ("items", "params", "headers", "env_headers", "pagination", "timeout",
                        "retries", "max_pages", "lookup")),
}


# the numeric options of the built-in readers, as JSON Schema: the schema states them and
# lint (CP412) checks them with ``number_problem``; the readers refuse the same at run time
_SECONDS = {"type": "number", "exclusiveMinimum": 0}
_COUNT = {"type": "integer", "minimum": 1}
OPTION_BOUNDS: dict[str, dict[str, dict[str, Any]]] = {
    "http": {"timeout": _SECONDS, "retries": {"type": "integer", "minimum": 0},
             "max_pages": _COUNT},
    "sql": {"batch_size": _COUNT, "connect_timeout": _SECONDS, "statement_timeout": _SECONDS},
}
PAGINATION_BOUNDS: dict[str, dict[str, Any]] = {"size": _COUNT, "start": {"type": "integer"}}


def number_problem(value: Any, bound: dict[str, Any]) -> str | None:
    """Why ``value`` does not meet ``bound`` (a JSON Schema number/integer snippet), or None."""
    import math

    kind = bound["type"]
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind == "integer" and not isinstance(value, int)):
        return f"must be {'an integer' if kind == 'integer' else 'a number'}"
    if not math.isfinite(value):
        return "must be a finite number"
    if "minimum" in bound and value < bound["minimum"]:
        return f"must be at least {bound['minimum']}"
    if "exclusiveMinimum" in bound and value <= bound["exclusiveMinimum"]:
        return f"must be above {bound['exclusiveMinimum']}"
    return None


def source_options_schema(schema: dict[str, Any]) -> None:
    """Add to a source's JSON Schema: each built-in type's required and allowed options.

    A plugin's type (anything else) keeps every option: only the plugin knows them.
    """
    rules = []
    for kind, (required, optional) in BUILTIN_OPTIONS.items():
        rules.append({
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {"required": list(required),
                     "properties": {name: _option_schema(kind, name)
                                    for name in ("type", *required, *optional)},
                     "additionalProperties": False},
        })
    schema["allOf"] = rules


def _option_schema(kind: str, name: str) -> dict[str, Any]:
    if name == "pagination" and kind == "http":
        return {"type": "object", "properties": dict(PAGINATION_BOUNDS)}
    return dict(OPTION_BOUNDS.get(kind, {}).get(name, {}))
