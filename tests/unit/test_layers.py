"""Imports flow down only: core never imports the CLI, Typer or Rich; the CLI starts lean; no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cachectl"
UPPER = ("typer", "rich", "cachectl.cli", "cachectl.render")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_core_modules_never_import_cli_typer_or_rich() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        if rel[0] in ("cli", "render", "__main__.py"):
            continue
        for name in _imports(path):
            if any(name == u or name.startswith(u + ".") for u in UPPER):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_building_the_cli_does_not_import_redis() -> None:
    code = (
        "import sys; from cachectl.cli.app import build_command; build_command(); "
        "print(sorted(m for m in ('redis', 'rich.table', 'httpx', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_named_command_builds_only_itself() -> None:
    code = (
        "import sys; from cachectl.cli.app import COMMANDS, build_command; "
        "one = build_command(['lint', 'x.yaml']); "
        "print(sorted(one.commands), sorted(c for c in COMMANDS if 'cachectl.cli.' + c in sys.modules)); "
        "from cachectl.cli.app import built_commands; built = sorted(built_commands()); "
        "print(sorted(build_command(['--help']).commands) == built, "
        "sorted(build_command(['lnt']).commands) == built)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["['lint'] ['lint']", "True True"]


def _module_graph() -> dict[str, set[str]]:
    """Each cachectl module -> the cachectl modules it imports (TYPE_CHECKING and local imports too)."""
    paths = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & paths.keys()
                # `from pkg import submodule` needs the submodule; `from pkg import name`, pkg itself
                deps.update(submodules if len(submodules) == len(node.names) else {node.module})
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def test_no_import_cycles() -> None:
    graph = _module_graph()
    cycles = []
    for start in graph:  # a path from a module back to itself, shortest first
        seen, frontier = {start}, [[start]]
        while frontier:
            path = frontier.pop(0)
            for dep in sorted(graph[path[-1]]):
                if dep == start and min(path) == start:  # report each cycle once
                    cycles.append(" -> ".join([*path, start]))
                elif dep not in seen:
                    seen.add(dep)
                    frontier.append([*path, dep])
    assert cycles == []


# what `cachectl --help` and `cachectl lint` must never pay for at start-up (benchmarks/lint.py)
HEAVY = ("redis", "numpy", "rich.console", "rich.table", "rich.progress", "rich.markdown",
         "rich.syntax", "rich.traceback", "pygments", "httpx", "sqlalchemy")


def test_help_and_lint_start_without_redis_numpy_or_rich() -> None:
    policy = Path(__file__).resolve().parents[2] / "policies" / "ecommerce.yaml"
    loaded = {}
    for argv in (["--help"], ["lint", str(policy)]):
        code = (
            "import io, sys, contextlib; from cachectl.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()): exit_code = main({argv!r})\n"
            f"print(exit_code, sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        loaded[argv[0]] = out.stdout.strip()
    assert loaded == {"--help": "0 []", "lint": "0 []"}
