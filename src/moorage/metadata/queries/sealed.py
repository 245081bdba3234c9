"""Every sealed value the database holds, by table, for re-sealing under a new key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Table, select, update

from ..schema import upstreams, webhooks

if TYPE_CHECKING:
    from ..uow import UnitOfWork

# Tables with a sealed `secret` column (auth/sealing.py) and an `id` key.
SEALED_TABLES: dict[str, Table] = {"upstreams": upstreams, "webhooks": webhooks}


class SealedQueries:
    """Sealed values within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.conn = uow.conn

    def values(self, table: str) -> list[tuple[int, str]]:
        """(id, sealed secret) of every row of `table` that has one."""
        t = SEALED_TABLES[table]
        rows = self.conn.execute(select(t.c.id, t.c.secret).where(t.c.secret.is_not(None))
                                 .order_by(t.c.id))
        return [(int(r.id), str(r.secret)) for r in rows]

    def replace(self, table: str, row_id: int, old: str, new: str) -> bool:
        """Set the secret of row `row_id` to `new` if it is still `old`."""
        t = SEALED_TABLES[table]
        done = self.conn.execute(update(t).where(t.c.id == row_id, t.c.secret == old)
                                 .values(secret=new))
        return bool(done.rowcount)
