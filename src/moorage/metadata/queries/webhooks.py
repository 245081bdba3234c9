"""Webhooks and their deliveries: subscriptions by name, one delivery per (webhook, event), and
the queue a delivery run claims from, head of each repository first.

Order per repository: a run claims only the oldest unfinished delivery of each (webhook,
repository), so a later one waits until the earlier is delivered or given up. A claim is a
lease (`sending` until `lease_until`): a run that died lets another take the row over; every
change to a claimed row names its lease, so a run that lost it changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..schema import webhook_deliveries as d
from ..schema import webhooks as w

if TYPE_CHECKING:
    from ..uow import UnitOfWork

UNFINISHED = ("pending", "sending")


class NameTaken(Exception):
    """A webhook of that name exists already."""


class WebhookQueries:
    """The `webhooks` and `webhook_deliveries` tables within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn
        self._insert = uow.store._insert

    # -- subscriptions ------------------------------------------------------------------------

    def add(self, values: dict[str, Any]) -> int:
        """Insert a webhook; NameTaken when its name is in use."""
        if self.get(values["name"]) is not None:
            raise NameTaken(values["name"])
        try:
            with self.conn.begin_nested():
                key = self.conn.execute(w.insert().values(**values)).inserted_primary_key
        except IntegrityError:
            raise NameTaken(values["name"]) from None
        assert key is not None
        return int(key[0])

    def get(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute(select(w).where(w.c.name == name)).first()
        return dict(row._mapping) if row else None

    def get_by_id(self, webhook_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(select(w).where(w.c.id == webhook_id)).first()
        return dict(row._mapping) if row else None

    def all(self) -> list[dict[str, Any]]:
        """Every webhook, by name, with its pending and failed delivery counts."""
        counts = (select(d.c.webhook_id, d.c.status, func.count().label("n"))
                  .group_by(d.c.webhook_id, d.c.status))
        tally: dict[tuple[int, str], int] = {
            (r.webhook_id, r.status): r.n for r in self.conn.execute(counts)}
        out = []
        for row in self.conn.execute(select(w).order_by(w.c.name)):
            hook = dict(row._mapping)
            hook["pending"] = sum(tally.get((hook["id"], s), 0) for s in UNFINISHED)
            hook["failed"] = tally.get((hook["id"], "failed"), 0)
            out.append(hook)
        return out

    def subscriptions(self) -> list[dict[str, Any]]:
        """id, namespace, events and creation time of every webhook (what the consumer
        matches on)."""
        rows = self.conn.execute(select(w.c.id, w.c.namespace, w.c.events, w.c.created_at))
        return [dict(r._mapping) for r in rows]

    def remove(self, webhook_id: int) -> None:
        """Delete a webhook and its delivery history."""
        self.conn.execute(delete(d).where(d.c.webhook_id == webhook_id))
        self.conn.execute(delete(w).where(w.c.id == webhook_id))

    # -- deliveries ---------------------------------------------------------------------------

    def add_deliveries(self, rows: list[dict[str, Any]]) -> None:
        """Insert deliveries, skipping any (webhook, event) that has one."""
        if rows:
            stmt = self._insert(d).on_conflict_do_nothing(
                index_elements=["webhook_id", "event_id"])
            self.conn.execute(stmt, rows)

    def heads(self, webhook_id: int) -> list[dict[str, Any]]:
        """The oldest unfinished delivery of each repository of a webhook."""
        first = (select(d.c.repository, func.min(d.c.id).label("id"))
                 .where(d.c.webhook_id == webhook_id, d.c.status.in_(UNFINISHED))
                 .group_by(d.c.repository).subquery())
        rows = self.conn.execute(select(d).join(first, d.c.id == first.c.id).order_by(d.c.id))
        return [dict(r._mapping) for r in rows]

    def claim(self, delivery: dict[str, Any], now: float, lease_until: float) -> bool:
        """Lease one head for sending (an attempt counted); False when it is not due or another
        run took it."""
        due = or_(and_(d.c.status == "pending", d.c.next_attempt_at <= now),
                  and_(d.c.status == "sending", d.c.lease_until < now))
        result = self.conn.execute(
            update(d).where(d.c.id == delivery["id"], due)
            .values(status="sending", lease_until=lease_until, attempts=d.c.attempts + 1))
        return result.rowcount == 1

    def finish(self, delivery_id: int, lease_until: float, values: dict[str, Any]) -> bool:
        """Record an attempt's outcome while its lease holds (False: another run owns it)."""
        result = self.conn.execute(
            update(d).where(d.c.id == delivery_id, d.c.status == "sending",
                            d.c.lease_until == lease_until).values(**values))
        return result.rowcount == 1

    def deliveries(self, webhook_id: int, statuses: Iterable[str] | None, limit: int
                   ) -> list[dict[str, Any]]:
        """A webhook's deliveries, newest first."""
        query = select(d).where(d.c.webhook_id == webhook_id)
        if statuses is not None:
            query = query.where(d.c.status.in_(list(statuses)))
        rows = self.conn.execute(query.order_by(d.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]

    def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(select(d).where(d.c.id == delivery_id)).first()
        return dict(row._mapping) if row else None

    def requeue(self, delivery_id: int, now: float) -> bool:
        """A finished delivery becomes pending again, due now, with a fresh age and attempts."""
        result = self.conn.execute(
            update(d).where(d.c.id == delivery_id, d.c.status.in_(("failed", "delivered")))
            .values(status="pending", next_attempt_at=now, queued_at=now, attempts=0,
                    lease_until=None, delivered_at=None))
        return result.rowcount == 1
