"""Markdown reference tables generated from the model and the rule registry.

The policy-field table (docs/policy.md) and the rules table (docs/lint.md) are these
strings verbatim, and a test keeps them so: change the model or a rule, then paste the new output of
``python -m cachectl.lint.reference``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from cachectl.diagnostics import RULES
from cachectl.policy import model

_UNIT_KINDS = {"_duration": "duration", "_size": "size", "_ratio": "ratio"}
_SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("", model.PolicySpec),
    ("redis.", model.RedisSpec),
    ("thresholds.", model.ThresholdsSpec),
    ("thresholds.latency_p99_ms.", model.LatencySpec),
    ("defaults.", model.DefaultsSpec),
    ("defaults.compress.", model.CompressSpec),
    ("namespaces.NAME.", model.NamespaceSpec),
    ("namespaces.NAME.warm.", model.WarmSpec),
    ("namespaces.NAME.warm.source.", model.SourceSpec),
    ("trace.", model.TraceSpec),
)


def _kind(annotation: Any, metadata: list[Any]) -> str:
    for item in metadata:
        func = getattr(item, "func", None)
        if func is not None and func.__name__ in _UNIT_KINDS:
            return _UNIT_KINDS[func.__name__]
    origin = get_origin(annotation)
    args = [a for a in get_args(annotation) if a is not type(None)]
    if origin is not None and args and str(origin) == "typing.Annotated":
        return _kind(args[0], list(annotation.__metadata__))
    if hasattr(annotation, "__metadata__"):
        return _kind(get_args(annotation)[0], list(annotation.__metadata__))
    if origin is dict:
        return "mapping"
    if origin is list:
        return "list"
    if str(origin) == "typing.Literal":
        return " \\| ".join(str(a) for a in get_args(annotation))
    if len(args) == 1 and origin is not None:
        return _kind(args[0], [])
    if len(args) > 1:
        return " or ".join(_kind(a, []) for a in args)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return {int: "integer", float: "number", bool: "boolean", str: "string"}.get(
        annotation, str(annotation))


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        made = info.default_factory()  # type: ignore[call-arg]
        return "`[]`" if made == [] else "`{}`" if made == {} else "see below"
    if info.default is PydanticUndefined:
        return "required"
    if info.default is None:
        return "—"
    if isinstance(info.default, bool):
        return f"`{str(info.default).lower()}`"
    if info.default == "":
        return '`""`'
    return f"`{info.default}`"


def policy_fields() -> Iterator[tuple[str, str, str, str]]:
    """(field path, kind, default, meaning) for every field of the policy format."""
    for prefix, spec in _SECTIONS:
        for name, info in spec.model_fields.items():
            yield (prefix + name, _kind(info.annotation, info.metadata), _default(info),
                   (info.description or "").replace("|", "\\|"))


def policy_fields_markdown() -> str:
    rows = ["| field | kind | default | meaning |", "| --- | --- | --- | --- |"]
    rows += [f"| `{path}` | {kind} | {default} | {meaning} |"
             for path, kind, default, meaning in policy_fields()]
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def rules_markdown() -> str:
    rows = ["| code | name | severity | summary |", "| --- | --- | --- | --- |"]
    rows += [f"| {r.code} | {r.name} | {r.severity.value} | {_cell(r.summary)} |"
             for r in RULES.values()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(policy_fields_markdown() + "\n" + rules_markdown())
