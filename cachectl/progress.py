"""The progress callback core functions accept; the render layer draws it (or not)."""

from __future__ import annotations

from typing import Protocol


class ProgressCallback(Protocol):
    def __call__(self, task: str, done: int, total: int | None = None) -> None:
        """Report that ``done`` units of ``task`` are complete (cumulative)."""


def no_progress(task: str, done: int, total: int | None = None) -> None:
    """The default: report nothing."""
