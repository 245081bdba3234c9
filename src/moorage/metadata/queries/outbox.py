"""The domain-event outbox: appending within a write, reading after a cursor, the consumers'
cursors (moved with a compare-and-set), their leases and dead letters, pruning."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, delete, func, or_, select, update

from ..base import Prebuilt, column_text
from ..schema import event_cursors, event_dead_letters, events

if TYPE_CHECKING:
    from ..uow import UnitOfWork

Records = Sequence[Mapping[str, Any]]
OUTBOX_LOCK = 0x6D6F6F72  # "moor": the advisory lock that orders appends on PostgreSQL
_LIMITS = {"type": 32, "actor": 160, "actor_kind": 16, "address": 64, "repository": 255,
           "digest": 200, "tag": 200}


def append(conn: Connection, records: Iterable[Mapping[str, Any]]) -> None:
    """Append event records inside the caller's transaction (the change and its events commit
    together or not at all); call it after the transaction's other writes."""
    rows = []
    for r in records:
        row = {k: r.get(k) for k in ("time", *_LIMITS)}
        for key, limit in _LIMITS.items():
            row[key] = column_text(row[key], limit)  # hostile text fits every engine
        row["payload"] = json.dumps(r["payload"], default=str) if r.get("payload") else None
        rows.append(row)
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        # Ids must become visible in id order, or a dispatcher that read 101 before 100
        # committed would skip 100. Held to commit, this lock makes appends commit in id order;
        # callers append last in their transaction, so it is held only for the commit itself.
        conn.execute(_ORDER_APPENDS)
    _APPEND.run(conn, rows)


# Built once: every write with events runs these.
_ORDER_APPENDS = select(func.pg_advisory_xact_lock(OUTBOX_LOCK))
_APPEND = Prebuilt(events.insert())


# Every dispatcher round of every consumer runs these three.
_READ = Prebuilt(select(events).where(events.c.id > bindparam("after"))
                 .order_by(events.c.id).limit(bindparam("limit")))
_EVENT_COLUMNS = tuple(c.key for c in events.c)
_CURSOR = Prebuilt(select(event_cursors.c.last_id)
                   .where(event_cursors.c.consumer == bindparam("consumer")))
_MOVE_CURSOR = Prebuilt(
    update(event_cursors)
    .where(event_cursors.c.consumer == bindparam("name"),
           event_cursors.c.last_id == bindparam("expected"))
    .values(last_id=bindparam("new_id"), updated_at=bindparam("now")))


def _decode(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(row)
    out["payload"] = json.loads(out["payload"]) if out["payload"] else None
    return out


class OutboxQueries:
    """The outbox and the consumers' cursors within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn
        self._insert = uow.store._insert

    # -- events -------------------------------------------------------------------------------

    def read(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` events with ids above `after_id`, in id order."""
        found = _READ.rows(self.conn, {"after": after_id, "limit": limit})
        return [_decode(dict(zip(_EVENT_COLUMNS, r, strict=True))) for r in found]

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` events, oldest first."""
        query = select(events).order_by(events.c.id.desc()).limit(limit)
        return [_decode(r) for r in reversed(self.conn.execute(query).mappings().all())]

    def last_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        return int(self.conn.execute(
            select(func.coalesce(func.max(events.c.id), 0))).scalar_one())

    def prune(self, before: float) -> int:
        """Delete the events older than `before` that every consumer's cursor has passed
        (none while no consumer has a cursor); how many went."""
        handled = self.conn.execute(select(func.min(event_cursors.c.last_id))).scalar_one()
        if handled is None:
            return 0
        return int(self.conn.execute(delete(events).where(
            events.c.id <= handled, events.c.time < before)).rowcount or 0)

    def prune_dead_letters(self, before: float) -> int:
        """Delete dead letters recorded before `before`; how many went."""
        return int(self.conn.execute(delete(event_dead_letters).where(
            event_dead_letters.c.failed_at < before)).rowcount or 0)

    # -- cursors and leases -------------------------------------------------------------------

    def cursor(self, consumer: str) -> int | None:
        """The last event id `consumer` has handled; None before its cursor exists."""
        value = _CURSOR.scalar(self.conn, {"consumer": consumer})
        return int(value) if value is not None else None

    def create_cursor(self, consumer: str) -> None:
        """Start `consumer`'s cursor at 0 unless it exists."""
        self.conn.execute(
            self._insert(event_cursors)
            .values(consumer=consumer, last_id=0, updated_at=time.time())
            .on_conflict_do_nothing(index_elements=["consumer"])
        )

    def move_cursor(self, consumer: str, expected: int, new: int) -> bool:
        """Move the cursor from `expected` to `new`; False when it is not at `expected`. On
        PostgreSQL the row lock makes a concurrent move wait, then miss."""
        return _MOVE_CURSOR.run(self.conn, {"name": consumer, "expected": expected,
                                            "new_id": new, "now": time.time()}) == 1

    def cursors(self) -> dict[str, int]:
        """Every consumer's position."""
        return {c: int(i) for c, i in self.conn.execute(
            select(event_cursors.c.consumer, event_cursors.c.last_id))}

    def take_lease(self, consumer: str, holder: str, seconds: float, now: float) -> bool:
        """Hold (or renew) `consumer`'s lease for `seconds` (its cursor exists); False while
        another holder's lease runs. The conditional update is atomic on both engines."""
        return self.conn.execute(
            update(event_cursors)
            .where(event_cursors.c.consumer == consumer,
                   or_(event_cursors.c.holder.is_(None), event_cursors.c.holder == holder,
                       event_cursors.c.lease_until < now))
            .values(holder=holder, lease_until=now + seconds)
        ).rowcount == 1

    def release_lease(self, consumer: str, holder: str) -> None:
        """Give `consumer`'s lease up (another process may take it at once)."""
        self.conn.execute(update(event_cursors)
                          .where(event_cursors.c.consumer == consumer,
                                 event_cursors.c.holder == holder)
                          .values(holder=None, lease_until=None))

    # -- dead letters -------------------------------------------------------------------------

    def add_dead_letter(self, consumer: str, event: Mapping[str, Any], attempts: int,
                        error: str, now: float) -> None:
        """Record `event` as one `consumer` gave up on (once per consumer and event)."""
        row = {"consumer": consumer, "event_id": event["id"], "type": event["type"],
               "repository": event.get("repository"), "digest": event.get("digest"),
               "attempts": attempts, "error": column_text(error, 4000), "failed_at": now}
        self.conn.execute(self._insert(event_dead_letters).values(**row)
                          .on_conflict_do_nothing(index_elements=["consumer", "event_id"]))

    def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` dead letters, oldest first."""
        query = (select(event_dead_letters)
                 .order_by(event_dead_letters.c.failed_at.desc()).limit(limit))
        return [dict(r) for r in reversed(self.conn.execute(query).mappings().all())]
