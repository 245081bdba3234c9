"""The catalog: repository names in byte order, as far as the caller may pull from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..auth.authorizer import Action, Authorizer, OpenAuthorizer
from ..auth.authorizer import repository as repo_resource
from ..auth.identity import Principal

if TYPE_CHECKING:
    from ..metadata.uow import Database


class CatalogService:
    """Pages of the catalog, filtered by what the caller may pull."""

    def __init__(self, database: Database, authorizer: Authorizer | None = None) -> None:
        self.database = database
        self.authorizer = authorizer or OpenAuthorizer()

    def catalog_visible_to(self, principal: Principal, last: str | None,
                           limit: int) -> list[str]:
        """Up to `limit` + 1 names after `last` that `principal` may pull (one more than asked
        tells the caller there is a next page); [] when `limit` is 0."""
        names: list[str] = []
        while limit and len(names) <= limit:
            with self.database.read() as uow:
                batch = uow.repositories.catalog(last, limit + 1)
            names += [r for r in batch
                      if self.authorizer.allows(principal, Action.PULL, repo_resource(r))]
            if len(batch) <= limit:
                break
            last = batch[-1]
        return names[: limit + 1]
