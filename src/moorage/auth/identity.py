"""Who a caller is: the principal every access decision is about."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ..metadata.rows import RobotRow


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous one)."""

    kind: str  # user | robot | oidc | anonymous | system
    name: str
    user_id: int | None = None
    is_admin: bool = False  # a server admin (users; the CLI and the schedule act as one)
    # An OIDC workload's namespace permissions, from the rules its ID token matched: they live
    # in the exchange, not in the database, so they travel with the principal.
    grants: tuple[tuple[str, frozenset[str]], ...] = ()

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Principal("anonymous", "anonymous")
CLI = Principal("user", "cli", is_admin=True)  # the `moorage` CLI: a server admin, on the host
SYSTEM = Principal("system", "scheduler", is_admin=True)  # the server's own schedule


def robot_unusable_reason(robot: RobotRow, name: str) -> str | None:
    """Why a revoked or expired robot no longer works (None while it does)."""
    if robot.revoked:
        return f"{name} was revoked: ask a namespace admin for a new robot account"
    if robot.expires_at is not None and robot.expires_at <= time.time():
        expired = datetime.fromtimestamp(robot.expires_at, UTC).isoformat(timespec="seconds")
        return f"{name} expired at {expired}: ask a namespace admin for a new robot account"
    return None
