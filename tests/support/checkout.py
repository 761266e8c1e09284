"""A clean copy of the checkout to build from: builds write into their source tree
(egg-info, build/), and two xdist workers building the same tree at once collide."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                               ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
                               ".work")


def clean_copy(dest: Path) -> Path:
    """The checkout (or unpacked sdist) copied to ``dest``, symlinks kept, caches left out."""
    shutil.copytree(ROOT, dest, symlinks=True, ignore=_SKIP)
    return dest
