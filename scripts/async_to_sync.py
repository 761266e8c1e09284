#!/usr/bin/env python3
"""Generate the sync cache (and its tests) from the async source, as psycopg 3 does.

    python scripts/async_to_sync.py           # rewrite every generated file
    python scripts/async_to_sync.py --check   # exit 1 naming the files that are stale

``cachectl/cache/aio.py`` is the only source of the cache and
``tests/integration/test_cache_async.py`` the only source of its behaviour tests; this
writes ``cachectl/cache/sync.py`` and ``tests/integration/test_cache_sync.py`` from them
(tests/unit/test_cache_generated.py fails when they are not current). The transformation
works on the syntax tree, after psycopg's ``tools/async_to_sync.py``:

- ``async def``, ``async with``, ``async for`` lose ``async``; ``await x`` becomes ``x``;
- the names in ``NAMES`` are renamed (``AsyncCache`` -> ``Cache``, the pairs of
  cachectl/cache/_acompat.py: ``AEvent`` -> ``Event``, ``aspawn`` -> ``spawn``, ...),
  the attributes in ``ATTRIBUTES`` too (``aclose`` -> ``close``), modules in ``MODULES``
  (``redis.asyncio`` -> ``redis``); ``Awaitable[X]`` becomes ``X``;
- an ``if True:  # ASYNC`` statement is replaced by its ``else:`` body (or removed when
  it has none): the few places where tasks and threads must differ.

Comments survive because the tree only locates the edits: they are applied to the
source text, so every comment, docstring and blank line of the source is kept (psycopg
gets the same from ast-comments; ``ast.unparse`` alone would drop them). Then ``ruff
check --fix`` drops the imports only the async side used and re-sorts the rest, and
``ruff format`` lays the result out (removing ``await`` shifts continuation lines).
The script lives in scripts/ beside reliability_report.py, the repository's other
generator.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (source, generated): paths relative to the repository
FILES = [
    ("cachectl/cache/aio.py", "cachectl/cache/sync.py"),
    ("tests/integration/test_cache_async.py", "tests/integration/test_cache_sync.py"),
]

NAMES = {
    "AsyncCache": "Cache",
    "aredis": "redis",
    "create_async_client": "create_lib_client",
    # cachectl/cache/_acompat.py
    "ACancelledError": "CancelledError",
    "AEvent": "Event",
    "AFuture": "Future",
    "ASemaphore": "Semaphore",
    "aresult": "result_of",
    "aspawn": "spawn",
    "astop_workers": "stop_workers",
    # tests/support/acompat.py
    "ABarrier": "Barrier",
    "ajoin": "join",
    "asleep": "sleep",
    "auntil": "until",
    "current_task": "current_thread",
    "running_tasks": "running_threads",
    "AsyncLoader": "Loader",
    "AsyncIterator": "Iterator",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}
ATTRIBUTES = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}
MODULES = {"redis.asyncio": "redis"}

HEADER = "# generated from {source} by scripts/async_to_sync.py, do not edit\n"


class GenerationError(Exception):
    """The source uses something the transformation does not handle."""


@dataclass(frozen=True)
class Edit:
    start: tuple[int, int]  # (line, column in characters), 1-based lines
    end: tuple[int, int]
    text: str


def _is_async_block(node: ast.stmt, lines: list[str]) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Constant)
            and node.test.value is True and "# ASYNC" in lines[node.lineno - 1])


class _Editor(ast.NodeVisitor):
    """Collects the text edits that turn the async source into the sync module."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.edits: list[Edit] = []

    def _col(self, line: int, byte_col: int) -> int:
        """ast's column (UTF-8 bytes) as a character index."""
        return len(self.lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8"))

    def _start(self, node: ast.AST) -> tuple[int, int]:
        return node.lineno, self._col(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def _end(self, node: ast.AST) -> tuple[int, int]:
        line = node.end_lineno  # type: ignore[attr-defined]
        return line, self._col(line, node.end_col_offset)  # type: ignore[attr-defined]

    def _text(self, start: tuple[int, int], end: tuple[int, int]) -> str:
        if start[0] == end[0]:
            return self.lines[start[0] - 1][start[1]:end[1]]
        parts = [self.lines[start[0] - 1][start[1]:]]
        parts += self.lines[start[0]:end[0] - 1]
        parts.append(self.lines[end[0] - 1][:end[1]])
        return "".join(parts)

    def _drop_async(self, node: ast.AST) -> None:
        line, col = self._start(node)
        if not self.lines[line - 1].startswith("async ", col):
            raise GenerationError(f"line {line}: expected 'async' at column {col}")
        self.edits.append(Edit((line, col), (line, col + len("async ")), ""))

    def _rename_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        new = NAMES.get(node.name)
        if new is None:
            return
        line = node.lineno
        text = self.lines[line - 1]
        keyword = "class " if isinstance(node, ast.ClassDef) else "def "
        col = text.index(keyword + node.name) + len(keyword)
        self.edits.append(Edit((line, col), (line, col + len(node.name)), new))

    # ------------------------------------------------------------------ statements

    def visit_If(self, node: ast.If) -> None:
        if not _is_async_block(node, self.lines):
            self.generic_visit(node)
            return
        start = (node.lineno, 0)
        if not node.orelse:
            last = node.body[-1].end_lineno or node.lineno
            self.edits.append(Edit(start, (last + 1, 0), ""))
            return
        if isinstance(node.orelse[0], ast.If) and node.orelse[0].lineno == self._else_line(node):
            raise GenerationError(f"line {node.lineno}: `if True:  # ASYNC` takes no elif")
        else_line = self._else_line(node)
        last = node.orelse[-1].end_lineno or else_line
        indent = len(self.lines[node.lineno - 1]) - len(self.lines[node.lineno - 1].lstrip())
        body = []
        for text in self.lines[else_line:last]:  # the lines after `else:`
            stripped = text[4:] if text[:indent + 4].strip() == "" else text
            body.append(stripped if text.strip() else text)
        self.edits.append(Edit(start, (last + 1, 0), "".join(body)))

    def _else_line(self, node: ast.If) -> int:
        after = node.body[-1].end_lineno or node.lineno
        for number in range(after + 1, node.orelse[0].lineno + 1):
            if self.lines[number - 1].strip().startswith("else"):
                return number
        raise GenerationError(f"line {node.lineno}: no `else:` found")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._drop_async(node)
        self._rename_def(node)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._rename_def(node)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._rename_def(node)
        self.generic_visit(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        self._drop_async(node)
        self.generic_visit(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self._drop_async(node)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            module = MODULES.get(alias.name, alias.name)
            asname = NAMES.get(alias.asname, alias.asname) if alias.asname else None
            if module == alias.name and asname == alias.asname:
                continue
            text = module if asname in (None, module) else f"{module} as {asname}"
            self.edits.append(Edit(self._start(alias), self._end(alias), text))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module in MODULES:
            line = node.lineno
            col = self.lines[line - 1].index(node.module, node.col_offset)
            self.edits.append(Edit((line, col), (line, col + len(node.module)), MODULES[node.module]))
        for alias in node.names:
            new = NAMES.get(alias.name)
            if new is not None:
                start = self._start(alias)
                self.edits.append(Edit(start, (start[0], start[1] + len(alias.name)), new))

    # ------------------------------------------------------------------ expressions

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            raise GenerationError(f"line {node.target.lineno}: async comprehensions are not converted")
        self.generic_visit(node)

    def visit_Await(self, node: ast.Await) -> None:
        self.edits.append(Edit(self._start(node), self._start(node.value), ""))
        self.visit(node.value)

    def visit_Name(self, node: ast.Name) -> None:
        new = NAMES.get(node.id)
        if new is not None:
            self.edits.append(Edit(self._start(node), self._end(node), new))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.visit(node.value)
        new = ATTRIBUTES.get(node.attr)
        if new is not None:
            line, end = self._end(node)
            self.edits.append(Edit((line, end - len(node.attr)), (line, end), new))

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == "Awaitable":
            # Awaitable[X] -> X (the slice converted first, as one edit)
            inner = _Editor(self.lines)
            inner.visit(node.slice)
            start, end = self._start(node.slice), self._end(node.slice)
            text = _apply(self._text(start, end).splitlines(keepends=True) or [""],
                          [_shift(e, start) for e in inner.edits])
            self.edits.append(Edit(self._start(node), self._end(node), text))
            return
        self.generic_visit(node)


def _shift(edit: Edit, origin: tuple[int, int]) -> Edit:
    """``edit`` relative to a fragment of the source that begins at ``origin``."""

    def move(pos: tuple[int, int]) -> tuple[int, int]:
        line = pos[0] - origin[0] + 1
        return line, pos[1] - origin[1] if pos[0] == origin[0] else pos[1]

    return Edit(move(edit.start), move(edit.end), edit.text)


def _apply(lines: list[str], edits: list[Edit]) -> str:
    """The text with ``edits`` applied; an edit inside one already applied is dropped."""
    ordered = sorted(edits, key=lambda e: (e.start, e.end), reverse=True)
    text = list(lines)
    applied: list[Edit] = []
    for edit in ordered:
        if any(a.start <= edit.start and edit.end <= a.end for a in applied):
            continue
        (l1, c1), (l2, c2) = edit.start, edit.end
        head = text[l1 - 1][:c1] if l1 - 1 < len(text) else ""
        tail = text[l2 - 1][c2:] if l2 - 1 < len(text) else ""
        text[l1 - 1:l2] = [head + edit.text + tail]
        applied.append(edit)
    return "".join(text)


def _ruff(args: list[str], text: str, filename: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter running ruff on our own text
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", filename, "-"],
        input=text, capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode not in (0, 1) or not done.stdout:
        raise GenerationError(f"ruff {args[0]} failed on {filename}: {done.stderr.strip()}")
    return done.stdout


def convert(source: str, source_name: str, target_name: str) -> str:
    """The generated module for ``source`` (the text of ``source_name``)."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    editor = _Editor(lines)
    editor.visit(tree)
    text = HEADER.format(source=Path(source_name).name) + _apply(lines, editor.edits)
    ast.parse(text)  # the transformation must leave valid Python
    text = _ruff(["check", "--fix", "--exit-zero", "--quiet", "--select", "F401,I001"], text,
                 target_name)
    return _ruff(["format", "--quiet"], text, target_name)


def generate() -> dict[Path, str]:
    """Each generated file's path and the text it must hold."""
    out = {}
    for source, target in FILES:
        out[REPO / target] = convert((REPO / source).read_text(encoding="utf-8"), source, target)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated file is not current")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generate().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(REPO))
        if not args.check:
            path.write_text(text, encoding="utf-8")
    verb = "stale" if args.check else "written"
    for path in stale:
        sys.stderr.write(f"{verb}: {path}\n")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
