"""Look-backs over recent outbox events for the unusual-activity watcher (events/activity.py):
bounded to the last ids before the event looked at, so each costs a primary-key range scan."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from ..schema import events

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class ActivityQueries:
    """Recent events of one actor within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.conn = uow.conn

    def recent_of(self, actor: str, types: tuple[str, ...], since: float, upto_id: int,
                  history: int) -> list[dict[str, Any]]:
        """(type, payload) of `actor`'s events of `types` at or after time `since`, among the
        `history` ids up to `upto_id`."""
        rows = self.conn.execute(
            select(events.c.type, events.c.payload).where(
                events.c.id > upto_id - history, events.c.id <= upto_id,
                events.c.actor == actor, events.c.type.in_(types), events.c.time >= since))
        return [{"type": t, "payload": json.loads(p) if p else None} for t, p in rows]

    def seen(self, actor: str, kind: str, address: str | None, before_id: int,
             history: int) -> bool:
        """Whether `actor` (of `kind`) appears in the `history` ids before `before_id`, from
        `address` (any address when None)."""
        where = and_(events.c.id > before_id - history, events.c.id < before_id,
                     events.c.actor == actor, events.c.actor_kind == kind)
        if address is not None:
            where = and_(where, events.c.address == address)
        return self.conn.execute(select(events.c.id).where(where).limit(1)).first() is not None
