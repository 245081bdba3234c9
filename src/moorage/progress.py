"""How long operations report progress: a callback the CLI draws as a bar (cli/common.py)."""

from __future__ import annotations

from collections.abc import Callable

# (phase, done, total or None when unknown)
Progress = Callable[[str, int, int | None], None]


def silent(_phase: str, _done: int, _total: int | None) -> None:
    """The progress callback of a caller that shows none."""
