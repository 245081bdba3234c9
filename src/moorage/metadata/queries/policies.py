"""Policy rows: immutability rules, namespace quotas, retention policies."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, literal_column, select

from ..base import Prebuilt
from ..schema import immutability_rules, quotas, retention_policies

if TYPE_CHECKING:
    from ..uow import UnitOfWork


class PolicyQueries:
    """Policies within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn
        self._policy: dict[str, tuple[list[tuple[str, str]], int | None]] = {}

    # -- immutability -----------------------------------------------------------------------

    def immutability_rules(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Rules of one namespace, or all, as rows."""
        query = select(immutability_rules).order_by(
            immutability_rules.c.namespace, immutability_rules.c.pattern
        )
        if namespace is not None:
            query = query.where(immutability_rules.c.namespace == namespace)
        return [dict(r._mapping) for r in self.conn.execute(query)]

    def rules(self, namespace: str) -> list[tuple[str, str]]:
        """(pattern, exceptions) of a namespace's immutability rules."""
        return self._push_policy(namespace)[0]

    def _push_policy(self, namespace: str) -> tuple[list[tuple[str, str]], int | None]:
        # A push asks for both; one statement reads both, once per unit of work (a policy
        # write in it forgets them).
        found = self._policy.get(namespace)
        if found is None:
            rows = _PUSH_POLICY.rows(self.conn, {"namespace": namespace})
            rules = [(p, e) for _, p, e in rows if p is not None]
            found = self._policy[namespace] = (rules, rows[0][0] if rows else None)
        return found

    def add_immutability_rule(self, namespace: str, pattern: str, exceptions: str,
                              actor: str | None) -> None:
        """Create or replace the rule for `pattern` in `namespace`."""
        self._policy.clear()
        stmt = self.uow.store._insert(immutability_rules).values(
            namespace=namespace,
            pattern=pattern,
            exceptions=exceptions,
            created_by=actor,
            created_at=time.time(),
        )
        self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["namespace", "pattern"],
                set_={"exceptions": stmt.excluded.exceptions},
            )
        )

    def remove_immutability_rule(self, namespace: str, pattern: str) -> bool:
        """Delete a rule; False when there was none."""
        self._policy.clear()
        result = self.conn.execute(
            delete(immutability_rules).where(
                immutability_rules.c.namespace == namespace,
                immutability_rules.c.pattern == pattern,
            )
        )
        return result.rowcount > 0

    # -- quotas -----------------------------------------------------------------------------

    def quota(self, namespace: str) -> int | None:
        """The namespace's quota in bytes, None when it has none."""
        return self._push_policy(namespace)[1]

    def quotas(self) -> dict[str, int]:
        """Every quota by namespace."""
        return {n: b for n, b in self.conn.execute(select(quotas.c.namespace,
                                                          quotas.c.limit_bytes))}

    def set_quota(self, namespace: str, limit: int | None, actor: str | None) -> None:
        """Set (or with None, remove) a namespace's quota in bytes."""
        self._policy.clear()
        if limit is None:
            self.conn.execute(delete(quotas).where(quotas.c.namespace == namespace))
            return
        now = time.time()
        stmt = self.uow.store._insert(quotas).values(
            namespace=namespace, limit_bytes=limit, updated_by=actor, updated_at=now
        )
        self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["namespace"],
                set_={"limit_bytes": limit, "updated_by": actor, "updated_at": now},
            )
        )

    # -- retention ----------------------------------------------------------------------------

    def set_retention(self, namespace: str, repository: str | None,
                      rules: dict[str, Any] | None, actor: str | None) -> None:
        """Create, replace or (rules None) remove the policy of a namespace or repository."""
        scope = and_(
            retention_policies.c.namespace == namespace,
            retention_policies.c.repository.is_(None)
            if repository is None
            else retention_policies.c.repository == repository,
        )
        self.conn.execute(delete(retention_policies).where(scope))
        if rules is not None:
            self.conn.execute(
                retention_policies.insert().values(
                    namespace=namespace,
                    repository=repository,
                    rules=json.dumps(rules, sort_keys=True),
                    created_by=actor,
                    updated_at=time.time(),
                )
            )

    def retention(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Retention policy rows (rules decoded) of one namespace, or all."""
        query = select(retention_policies).order_by(
            retention_policies.c.namespace, retention_policies.c.repository
        )
        if namespace is not None:
            query = query.where(retention_policies.c.namespace == namespace)
        out = []
        for r in self.conn.execute(query):
            d = dict(r._mapping)
            d["rules"] = json.loads(d["rules"])
            out.append(d)
        return out


# One row per rule of the namespace (or one row of NULLs), each carrying the quota: a push reads
# both policies in one statement.
_ONE_ROW = select(literal_column("1").label("one")).subquery("one_row")
_PUSH_POLICY = Prebuilt(
    select(
        select(quotas.c.limit_bytes)
        .where(quotas.c.namespace == bindparam("namespace"))
        .scalar_subquery(),
        immutability_rules.c.pattern,
        immutability_rules.c.exceptions,
    )
    .select_from(
        _ONE_ROW.outerjoin(
            immutability_rules, immutability_rules.c.namespace == bindparam("namespace")
        )
    )
)
