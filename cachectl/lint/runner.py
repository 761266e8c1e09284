"""Lint policy files: the loader's diagnostics, then every semantic rule family."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from cachectl.diagnostics import Diagnostic, Span
from cachectl.errors import UsageError
from cachectl.lint import compress, document, sources, templates, thresholds, ttl, urls
from cachectl.lint.context import LintContext
from cachectl.lint.report import LintReport
from cachectl.policy.loader import LoadResult, parse_policy, read_policy

POLICY_SUFFIXES = (".yaml", ".yml")

# one module per rule family; each reads the validated document and reports findings
RULE_FAMILIES: tuple[Callable[[LintContext], None], ...] = (
    document.check, ttl.check, templates.check, thresholds.check, urls.check, sources.check,
    compress.check,
)


def lint_paths(paths: Iterable[str | Path], env: Mapping[str, str],
               strict: bool = False) -> LintReport:
    """Lint policy files and folders (recursively: *.yaml and *.yml, hidden folders skipped).

    ``env`` is the environment for ``${VAR}`` interpolation. Raises UsageError for a path
    that does not exist or a folder without policies, PolicyError for an unreadable file.
    """
    files = collect_files(paths)
    found: list[Diagnostic] = []
    for path in files:
        found.extend(_check(read_policy(path, env), path.parent))
    return LintReport(tuple(str(p) for p in files), tuple(found), strict)


def lint_source(data: bytes | str, name: str, env: Mapping[str, str],
                base_dir: Path | None = None) -> tuple[Diagnostic, ...]:
    """Lint policy text named ``name``; ``base_dir`` resolves relative warm sources."""
    result = parse_policy(data, name, env, source_path=base_dir / name if base_dir else None)
    return tuple(_check(result, base_dir))


def _check(result: LoadResult, base_dir: Path | None) -> list[Diagnostic]:
    """The loader's diagnostics, then the rule families' (once per code and position)."""
    found = list(result.diagnostics)
    if result.spec is not None and result.spans is not None:
        ctx = LintContext(result.spec, result.spans, base_dir, policy=result.policy)
        for rule in RULE_FAMILIES:
            rule(ctx)
        found.extend(ctx.found)
    return sorted(_one_per_position(found), key=Diagnostic.sort_key)


def _one_per_position(found: list[Diagnostic]) -> list[Diagnostic]:
    """One finding per code and position: a bad value in ``defaults`` that every namespace
    inherits is reported once, saying how many namespaces it affects."""
    groups: dict[tuple[str, Span], list[Diagnostic]] = {}
    for d in found:
        groups.setdefault((d.code, d.span), []).append(d)
    out = []
    for first, *rest in groups.values():
        if rest:
            more = len({d.message for d in rest} - {first.message})
            if more:
                first = replace(first, message=f"{first.message} (and {more} more like it)")
        out.append(first)
    return out


def collect_files(paths: Iterable[str | Path]) -> list[Path]:
    """The policy files named by ``paths``, in order, each once."""
    out: list[Path] = []
    seen: set[Path] = set()
    given = [Path(p) for p in paths]
    if not given:
        raise UsageError("no policy file or folder given", hint="cachectl lint policies/")
    for path in given:
        if path.is_dir():
            found = _walk(path)
            if not found:
                raise UsageError(f"no policy files (*.yaml, *.yml) under {path}",
                                 hint="pass a policy file or a folder that holds some")
        elif path.exists():
            found = [path]
        else:
            raise UsageError(f"{path}: no such file or folder",
                             hint="check the path; lint takes policy files and folders")
        for file in found:
            resolved = file.resolve()
            if resolved not in seen:
                seen.add(resolved)
                out.append(file)
    return out


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / f for f in files
                     if f.endswith(POLICY_SUFFIXES) and not f.startswith("."))
    return sorted(found, key=lambda p: p.parts)
