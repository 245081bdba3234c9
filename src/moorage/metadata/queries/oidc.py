"""Trusted OIDC issuers and their claim rules (JSON columns decoded here)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..schema import oidc_issuers as oi
from ..schema import oidc_rules as orl

if TYPE_CHECKING:
    from ..uow import UnitOfWork


def _rule(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["claims"] = json.loads(d["claims"])
    d["permissions"] = json.loads(d["permissions"])
    return d


class OidcQueries:
    """The `oidc_issuers` and `oidc_rules` tables within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.conn = uow.conn

    def issuer(self, issuer: str | int) -> dict[str, Any] | None:
        """One issuer by its `iss` string or its id."""
        where = oi.c.id == issuer if isinstance(issuer, int) else oi.c.issuer == issuer
        row = self.conn.execute(select(oi).where(where)).first()
        return dict(row._mapping) if row else None

    def issuers(self) -> list[dict[str, Any]]:
        """Every issuer, by `iss`."""
        return [dict(r._mapping) for r in self.conn.execute(select(oi).order_by(oi.c.issuer))]

    def add_issuer(self, issuer: str, audience: str, jwks_url: str | None, jwks: str | None,
                   created_by: str | None) -> int | None:
        """Insert an issuer; None when one with that `iss` exists."""
        try:
            with self.conn.begin_nested():
                key = self.conn.execute(oi.insert().values(
                    issuer=issuer, audience=audience, jwks_url=jwks_url, jwks=jwks,
                    created_at=time.time(), created_by=created_by)).inserted_primary_key
        except IntegrityError:
            return None
        assert key is not None
        return int(key[0])

    def update_issuer(self, issuer_id: int, **values: Any) -> None:
        """Change an issuer's audience and/or key source."""
        if values:
            self.conn.execute(update(oi).where(oi.c.id == issuer_id).values(**values))

    def remove_issuer(self, issuer_id: int) -> bool:
        """Delete an issuer and its rules; False when there was none."""
        self.conn.execute(delete(orl).where(orl.c.issuer_id == issuer_id))
        return self.conn.execute(delete(oi).where(oi.c.id == issuer_id)).rowcount > 0

    def add_rule(self, issuer_id: int, claims: dict[str, str],
                 permissions: dict[str, list[str]], created_by: str | None) -> int:
        """Insert a rule of an issuer; its id."""
        key = self.conn.execute(orl.insert().values(
            issuer_id=issuer_id, claims=json.dumps(claims, sort_keys=True),
            permissions=json.dumps(permissions, sort_keys=True), created_at=time.time(),
            created_by=created_by)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def rules(self, issuer_id: int | None = None) -> list[dict[str, Any]]:
        """The rules of one issuer (or of all), oldest first."""
        query = select(orl).order_by(orl.c.issuer_id, orl.c.id)
        if issuer_id is not None:
            query = query.where(orl.c.issuer_id == issuer_id)
        return [_rule(r) for r in self.conn.execute(query)]

    def rule(self, rule_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(select(orl).where(orl.c.id == rule_id)).first()
        return _rule(row) if row else None

    def remove_rule(self, rule_id: int) -> bool:
        """Delete a rule; False when there was none."""
        return self.conn.execute(delete(orl).where(orl.c.id == rule_id)).rowcount > 0
