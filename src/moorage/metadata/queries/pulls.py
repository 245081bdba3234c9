"""Last pull time per repository and tag or digest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func

from ..schema import pull_times

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class PullQueries:
    """Pull times within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def record_pulls(self, pulls: dict[tuple[str, str], float]) -> None:
        """Upsert the latest pull time per (repository, tag or digest); never moves one back."""
        if not pulls:
            return
        rows = [{"repository": r, "reference": ref, "pulled_at": t}
                for (r, ref), t in pulls.items()]
        stmt = self.uow.store._insert(pull_times)
        later = (func.max if self.uow.dialect == "sqlite" else func.greatest)(
            pull_times.c.pulled_at, stmt.excluded.pulled_at)
        self.conn.execute(
            stmt.on_conflict_do_update(index_elements=["repository", "reference"],
                                       set_={"pulled_at": later}),
            rows,
        )
