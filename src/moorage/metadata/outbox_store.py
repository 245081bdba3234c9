"""SQL of the domain-event outbox: appending within a write, reading after a cursor, and moving
each consumer's cursor with a compare-and-set."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update

from .base import StoreBase, column_text
from .schema import event_cursors, event_dead_letters, events

Records = Sequence[Mapping[str, Any]]
# What a write operation is given to append: the rows, or a factory of rows from what only the
# transaction learns (which manifests a sweep deleted, which uploads expired).
Emit = Records | Callable[..., Records] | None
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
    conn.execute(_APPEND, rows)


# Built once: every write with events runs these.
_ORDER_APPENDS = select(func.pg_advisory_xact_lock(OUTBOX_LOCK))
_APPEND = events.insert()


class _Moved(Exception):
    """Another process advanced the cursor first (rolls the transaction back)."""


def emit(conn: Connection, events: Emit, *facts: Any) -> None:
    """Append `events` (calling a factory with `facts` first) inside the caller's transaction."""
    if events is None:
        return
    append(conn, events(*facts) if callable(events) else events)


def _decode(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(row)
    out["payload"] = json.loads(out["payload"]) if out["payload"] else None
    return out


class OutboxStore(StoreBase):
    """Reads of the outbox and the consumers' cursors."""

    def append_events(self, records: Records) -> None:
        """Append events in a transaction of their own (the event is the whole change)."""
        if records:
            with self._write() as conn:
                append(conn, records)

    def read(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` events with ids above `after_id`, in id order."""
        query = select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
        with self._read() as conn:
            return [_decode(r) for r in conn.execute(query).mappings()]

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` events, oldest first."""
        query = select(events).order_by(events.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [_decode(r) for r in reversed(conn.execute(query).mappings().all())]

    def last_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        with self._read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())

    def cursor(self, consumer: str) -> int:
        """The last event id `consumer` has handled; 0 for a consumer seen for the first time."""
        with self._read() as conn:
            value = conn.execute(
                select(event_cursors.c.last_id).where(event_cursors.c.consumer == consumer)
            ).scalar_one_or_none()
        if value is not None:
            return int(value)
        with self._write() as conn:
            conn.execute(
                self._insert(event_cursors)
                .values(consumer=consumer, last_id=0, updated_at=time.time())
                .on_conflict_do_nothing(index_elements=["consumer"])
            )
        return self.cursor(consumer)

    def advance(
        self,
        consumer: str,
        expected: int,
        new: int,
        apply: Callable[[Connection], None] | None = None,
    ) -> bool:
        """Move the cursor from `expected` to `new` and run `apply(conn)` in that transaction.

        False (and nothing written) when another process moved the cursor first. The update
        comes first: on PostgreSQL its row lock makes a concurrent advance wait, then miss.
        """
        try:
            with self._write() as conn:
                moved = conn.execute(
                    update(event_cursors)
                    .where(event_cursors.c.consumer == consumer,
                           event_cursors.c.last_id == expected)
                    .values(last_id=new, updated_at=time.time())
                ).rowcount
                if moved != 1:
                    raise _Moved
                if apply is not None:
                    apply(conn)
        except _Moved:
            return False
        return True

    def cursors(self) -> dict[str, int]:
        """Every consumer's position."""
        with self._read() as conn:
            return {c: int(i) for c, i in conn.execute(
                select(event_cursors.c.consumer, event_cursors.c.last_id))}

    def take_lease(self, consumer: str, holder: str, seconds: float, now: float) -> bool:
        """Hold (or renew) `consumer`'s lease for `seconds`; False while another holder's lease
        runs. The conditional update is atomic on both engines (row lock / write lock)."""
        self.cursor(consumer)  # the row exists
        with self._write() as conn:
            return conn.execute(
                update(event_cursors)
                .where(event_cursors.c.consumer == consumer,
                       or_(event_cursors.c.holder.is_(None), event_cursors.c.holder == holder,
                           event_cursors.c.lease_until < now))
                .values(holder=holder, lease_until=now + seconds)
            ).rowcount == 1

    def release_lease(self, consumer: str, holder: str) -> None:
        """Give `consumer`'s lease up (another process may take it at once)."""
        with self._write() as conn:
            conn.execute(update(event_cursors)
                         .where(event_cursors.c.consumer == consumer,
                                event_cursors.c.holder == holder)
                         .values(holder=None, lease_until=None))

    def dead_letter(self, consumer: str, expected: int, event: Mapping[str, Any],
                    attempts: int, error: str, now: float) -> bool:
        """Record `event` as one `consumer` gave up on and move its cursor past it, in one
        transaction; False when another process moved the cursor first."""
        row = {"consumer": consumer, "event_id": event["id"], "type": event["type"],
               "repository": event.get("repository"), "digest": event.get("digest"),
               "attempts": attempts, "error": column_text(error, 4000), "failed_at": now}

        def record(conn: Connection) -> None:
            conn.execute(self._insert(event_dead_letters).values(**row)
                         .on_conflict_do_nothing(index_elements=["consumer", "event_id"]))

        return self.advance(consumer, expected, int(event["id"]), record)

    def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` dead letters, oldest first."""
        query = (select(event_dead_letters)
                 .order_by(event_dead_letters.c.failed_at.desc()).limit(limit))
        with self._read() as conn:
            return [dict(r) for r in reversed(conn.execute(query).mappings().all())]

    def prune(self, before: float) -> int:
        """Delete the events older than `before` that every consumer's cursor has passed
        (none while no consumer has a cursor); how many went."""
        with self._write() as conn:
            handled = conn.execute(select(func.min(event_cursors.c.last_id))).scalar_one()
            if handled is None:
                return 0
            return int(conn.execute(delete(events).where(
                events.c.id <= handled, events.c.time < before)).rowcount or 0)
