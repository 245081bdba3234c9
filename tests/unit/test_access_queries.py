"""Account and namespace creation on both engines: True when the row went in, False when the
name was taken. PostgreSQL's dialect adds RETURNING for the new id, which makes rowcount -1
there: creating any user or namespace through the API answered 409 "exists"."""

from __future__ import annotations

from moorage.metadata.uow import Database


def test_create_user_and_namespace_say_whether_they_created(engine):
    database = Database(engine)
    with database.write() as uow:
        assert uow.access.create_user("erin", "hash", False) is True
        assert uow.access.create_user("erin", "other", True) is False
        assert uow.access.create_namespace("team", "private", "erin") is True
        assert uow.access.create_namespace("team", "public", None) is False
    with database.read() as uow:
        user = uow.access.get_user("erin")
        namespace = uow.access.get_namespace("team")
    assert user is not None and user.password_hash == "hash" and not user.is_admin
    assert namespace is not None and namespace.visibility == "private"
