"""What every semantic rule reads: the validated document, its positions, its templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cachectl.diagnostics import Code, Diagnostic, Span, make
from cachectl.policy.model import NamespaceSpec, Policy, PolicySpec, SpanIndex
from cachectl.policy.template import KeyTemplate, TemplateSyntaxError, versioned_source

NsPath = tuple[str | int, ...]


@dataclass
class LintContext:
    """One policy document under lint; rules call ``report`` for each finding.

    ``base_dir`` is the folder relative warm-source paths are resolved against (the
    policy file's own folder), or None when there is no file to resolve against.
    """

    spec: PolicySpec
    spans: SpanIndex
    base_dir: Path | None
    found: list[Diagnostic] = field(default_factory=list)
    policy: Policy | None = None  # the resolved policy, when the loader could build it

    def report(self, code: Code, message: str, span: Span, hint: str | None = None) -> None:
        self.found.append(make(code, message, span, hint))

    def value(self, *path: str | int) -> Span:
        return self.spans.value(*path)

    def key(self, *path: str | int) -> Span:
        return self.spans.key(*path)

    @cached_property
    def templates(self) -> dict[str, KeyTemplate]:
        """Each namespace's compiled template with the key prefix; broken ones are left out
        (the loader already reported them)."""
        prefix = self.spec.redis.key_prefix
        out: dict[str, KeyTemplate] = {}
        for name, ns in self.spec.namespaces.items():
            resolved = self.policy.namespaces.get(name) if self.policy is not None else None
            if resolved is not None:  # already compiled by the loader
                out[name] = resolved.template
                continue
            try:
                source = versioned_source(ns.key, ns.version)
                out[name] = KeyTemplate(source, prefix)
            except TemplateSyntaxError:
                try:  # a bad prefix (CP209) must not hide the namespaces' own problems
                    out[name] = KeyTemplate(versioned_source(ns.key, ns.version))
                except TemplateSyntaxError:
                    continue
        return out

    def namespaces(self) -> list[tuple[str, NamespaceSpec]]:
        return list(self.spec.namespaces.items())

    def inherited(self, name: str, ns: NamespaceSpec, field_name: str) -> tuple[object, NsPath]:
        """The namespace's own value of ``field_name``, else the default, and where it is."""
        own = getattr(ns, field_name)
        if own is not None:
            return own, ("namespaces", name, field_name)
        return getattr(self.spec.defaults, field_name), ("defaults", field_name)
