"""Rate limit rows (one per target) and GCRA buckets, charged by one conditional UPDATE each."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, and_, bindparam, case, delete, or_, select, update

from ..schema import rate_buckets, rate_limits

if TYPE_CHECKING:
    from ..uow import UnitOfWork

_NOW: Any = bindparam("now", type_=Float)
_COST: Any = bindparam("cost", type_=Float)
_LIMIT: Any = bindparam("limit", type_=Float)
_FROM = case((rate_buckets.c.tat > _NOW, rate_buckets.c.tat), else_=_NOW)
# The compare-and-set of GCRA: the TAT moves by one interval only while it stays within the
# burst; evaluated by the database on the row itself, so workers and nodes never race.
_CHARGE = (
    update(rate_buckets)
    .where(rate_buckets.c.key == bindparam("k"), _FROM + _COST - _NOW <= _LIMIT)
    .values(tat=_FROM + _COST)
)
_NOTICE = (
    update(rate_buckets)
    .where(rate_buckets.c.key == bindparam("k"),
           or_(rate_buckets.c.noticed_until.is_(None), rate_buckets.c.noticed_until <= _NOW))
    .values(noticed_until=bindparam("until"))
)


class RateLimitQueries:
    """Rate limits and buckets within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def all(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every (target_kind, target, limits) row, in target order."""
        rows = self.conn.execute(
            select(rate_limits.c.target_kind, rate_limits.c.target, rate_limits.c.limits)
            .order_by(rate_limits.c.target_kind, rate_limits.c.target))
        return [(r.target_kind, r.target, json.loads(r.limits)) for r in rows]

    def set(self, target_kind: str, target: str, limits: dict[str, Any],
            actor: str | None) -> None:
        """Replace one target's limits."""
        stmt = self.uow.store._insert(rate_limits).values(
            target_kind=target_kind, target=target, limits=json.dumps(limits, sort_keys=True),
            updated_at=time.time(), updated_by=actor)
        self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["target_kind", "target"],
            set_={"limits": stmt.excluded.limits, "updated_at": stmt.excluded.updated_at,
                  "updated_by": stmt.excluded.updated_by}))

    def remove(self, target_kind: str, target: str) -> bool:
        """Drop one target's limits; whether it had any."""
        result = self.conn.execute(delete(rate_limits).where(
            rate_limits.c.target_kind == target_kind, rate_limits.c.target == target))
        return result.rowcount > 0

    def charge(self, key: str, now: float, cost: float, limit: float) -> bool:
        """Charge `cost` seconds to bucket `key` if its TAT stays within `limit` of `now`."""
        params = {"k": key, "now": now, "cost": cost, "limit": limit + 1e-9}
        if self.conn.execute(_CHARGE, params).rowcount:
            return True
        inserted = self.conn.execute(
            self.uow.store._insert(rate_buckets).values(key=key, tat=now + cost)
            .on_conflict_do_nothing(index_elements=["key"]).returning(rate_buckets.c.key)).first()
        if inserted is not None:
            return True
        # Another request created the bucket between the two statements: charge it after all.
        return bool(self.conn.execute(_CHARGE, params).rowcount)

    def tat(self, key: str) -> float | None:
        """The bucket's theoretical arrival time (None: no bucket)."""
        found = self.conn.execute(
            select(rate_buckets.c.tat).where(rate_buckets.c.key == key)).scalar()
        return None if found is None else float(found)

    def claim_notice(self, key: str, now: float, until: float) -> bool:
        """Whether this refusal is the first of its window (it then owns the log and audit)."""
        return bool(self.conn.execute(_NOTICE, {"k": key, "now": now, "until": until}).rowcount)

    def forget_idle(self, before: float) -> int:
        """Drop buckets that are full again (a TAT in the past is the same as no row)."""
        return self.conn.execute(delete(rate_buckets).where(and_(
            rate_buckets.c.tat < before,
            or_(rate_buckets.c.noticed_until.is_(None), rate_buckets.c.noticed_until < before),
        ))).rowcount
