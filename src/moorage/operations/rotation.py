"""`moorage secrets rotate`: every sealed value re-sealed under a new key, one transaction per
table, while the old keys stay readable so a running server never meets a value it cannot open.

Embedded registry (key file): the current key moves to `secrets.key.previous`, the new one into
`secrets.key` (servers read the files on each use, so they seal with the new key at once and
still read the old), every value is re-sealed, and the previous file goes. With
MOORAGE_SECRETS_KEY: give every node the new key first and the old one in
MOORAGE_SECRETS_KEY_PREVIOUS, then rotate, then drop the previous key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..auth.authorizer import SERVER, Action, Authorizer, OpenAuthorizer
from ..auth.sealing import (
    KEY_FILE,
    PREVIOUS_KEY_FILE,
    Sealer,
    previous_keys,
    sealer_for,
    write_key_file,
)
from ..config import Settings
from ..metadata.queries.sealed import SEALED_TABLES
from ..metadata.uow import Database


@dataclass
class RotationReport:
    """Values re-sealed per table, and what the operator still has to do."""

    resealed: dict[str, int] = field(default_factory=dict)
    key_file: str | None = None  # the key file now holding the new key (embedded)
    next_steps: str = ""


class SecretsRotation:
    """Re-seals the stored secrets of a registry (server admins only)."""

    def __init__(self, database: Database, settings: Settings,
                 authorizer: Authorizer | None = None) -> None:
        self.database, self.settings = database, settings
        self.authorizer = authorizer or OpenAuthorizer()

    def rotate(self, actor: Any, new_key: bytes) -> RotationReport:
        """Re-seal every sealed value under `new_key` (idempotent: run it again after a crash)."""
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, "rotate the secrets key")
        current = sealer_for(self.settings)
        report = RotationReport()
        key_dir = Path(self.settings.data_dir)
        uses_file = not self.settings.secrets_key
        if uses_file and current.key != new_key:
            write_key_file(key_dir / PREVIOUS_KEY_FILE, current.key)
            write_key_file(key_dir / KEY_FILE, new_key)
        reader = Sealer(new_key, (current.key, *previous_keys(self.settings)))
        writer = Sealer(new_key)
        for table in SEALED_TABLES:
            report.resealed[table] = self._reseal(table, reader, writer)
        report.resealed["secrets"] = self._reseal_shared(reader, writer)
        if uses_file:
            (key_dir / PREVIOUS_KEY_FILE).unlink(missing_ok=True)
            report.key_file = str(key_dir / KEY_FILE)
        elif current.key != new_key:
            report.next_steps = ("set MOORAGE_SECRETS_KEY to the new key on every node (the old "
                                 "one in MOORAGE_SECRETS_KEY_PREVIOUS until all have it)")
        else:
            report.next_steps = "remove MOORAGE_SECRETS_KEY_PREVIOUS from every node"
        return report

    def _reseal_shared(self, reader: Sealer, writer: Sealer) -> int:
        """The shared secrets (token signing key, UI session key): sealed ones re-sealed, any
        still in the clear sealed."""
        from ..auth.service import SEALED_SECRET

        with self.database.write() as uow:
            count = 0
            for name, stored in uow.access.secret_values():
                plain = (reader.unseal(stored[len(SEALED_SECRET):].decode())
                         if stored.startswith(SEALED_SECRET) else stored)
                fresh = SEALED_SECRET + writer.seal(plain).encode()
                count += uow.access.replace_secret(name, stored, fresh)
            return count

    def _reseal(self, table: str, reader: Sealer, writer: Sealer) -> int:
        with self.database.write() as uow:
            count = 0
            for row_id, sealed in uow.sealed.values(table):
                fresh = writer.seal(reader.unseal(sealed))
                count += uow.sealed.replace(table, row_id, sealed, fresh)
            return count
