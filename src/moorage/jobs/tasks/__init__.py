"""The job kinds: one module per kind, each a `make(lifecycle)` returning its handler."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ..queue import Job

Handler = Callable[[Job], dict[str, Any] | None]
TEST_JOBS_ENV = "MOORAGE_TEST_JOBS"


class TaskFailed(Exception):
    """A task ran but did not succeed; the message becomes the job's last_error."""


def _modules(env: Mapping[str, str]) -> list[Any]:
    from . import gc, outbox, quota, retention, uploads

    mods = [gc, retention, uploads, quota, outbox]
    if env.get(TEST_JOBS_ENV) == "1":
        from . import testing

        mods.append(testing)
    return mods


def kinds(env: Mapping[str, str] | None = None) -> set[str]:
    """Every job kind this process can run."""
    return {m.KIND for m in _modules(os.environ if env is None else env)}


def build(lifecycle: Any, env: Mapping[str, str] | None = None) -> dict[str, Handler]:
    """{kind: handler} over the lifecycle service."""
    return {m.KIND: m.make(lifecycle) for m in _modules(os.environ if env is None else env)}
