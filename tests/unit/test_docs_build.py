"""docs/ builds with mkdocs --strict: a broken link or anchor, or a page missing from the nav, fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_docs_build_strict(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    problems = [line for line in run.stderr.splitlines() if not line.startswith("INFO")]
    assert run.returncode == 0, "\n".join(problems)
