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


def source_options_schema(schema: dict[str, Any]) -> None:
    """Add to a source's JSON Schema: each built-in type's required and allowed options.

    A plugin's type (anything else) keeps every option: only the plugin knows them.
    """
    rules = []
    for kind, (required, optional) in BUILTIN_OPTIONS.items():
        rules.append({
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {"required": list(required),
                     "properties": {name: {} for name in ("type", *required, *optional)},
                     "additionalProperties": False},
        })
    schema["allOf"] = rules
