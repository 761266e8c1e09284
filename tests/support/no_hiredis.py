"""Run a child Python as if hiredis were not installed (it is optional: the ``fast`` extra)."""

from __future__ import annotations

import os
from pathlib import Path

_SHADOW = 'raise ModuleNotFoundError("No module named \'hiredis\'", name="hiredis")\n'


def env_without_hiredis(folder: Path) -> dict[str, str]:
    """os.environ plus a PYTHONPATH entry whose ``hiredis`` fails to import, as a missing one does."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hiredis.py").write_text(_SHADOW)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}
