"""A NUL byte in any text the database is asked about (a hostile name, tag, upload id, scope or
account name) is the client's error on both engines: PostgreSQL refuses such text outright,
which answered 500 before."""

from __future__ import annotations

import pytest

from moorage.metadata.uow import Database, TextRefused


def test_a_nul_byte_is_a_client_error_or_simply_not_found(engine):
    database = Database(engine)
    try:
        with database.read() as uow:
            found = uow.access.get_user("admin\x00")
    except TextRefused as exc:
        assert engine.dialect.name == "postgresql"
        assert exc.status == 400
    else:
        assert engine.dialect.name == "sqlite" and found is None
    if engine.dialect.name == "postgresql":
        with pytest.raises(TextRefused), database.write() as uow:
            uow.access.create_user("robot\x00x", "hash", False)
