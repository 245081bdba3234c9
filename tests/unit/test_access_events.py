"""Admin changes and logins commit with their events: a change that fails writes no event, one
that succeeds writes exactly one, and an event that cannot be appended undoes its change (the
outbox is refused by a database trigger, so the append itself fails inside the change's write).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from moorage.auth.admin import Conflict
from moorage.auth.identity import CLI, Principal
from moorage.auth.throttle import pair_key
from moorage.bootstrap import Registry
from moorage.oci.errors import AccessDenied, Unauthorized

PASSWORD = "correct-horse-1"
REMOTE = "10.0.0.9"


@contextmanager
def outbox_refuses(registry: Registry) -> Iterator[None]:
    """Every insert into the outbox fails while the block runs (SQLite trigger)."""
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse_events BEFORE INSERT ON events "
                          "BEGIN SELECT RAISE(ABORT, 'the outbox refuses'); END"))
    try:
        yield
    finally:
        with registry.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_events"))


def _login(registry: Registry, username: str, password: str, remote: str,
           record: bool) -> Principal:
    return asyncio.run(registry.auth.login(username, password, remote, record=record))


def _failures(registry: Registry, username: str) -> int:
    with registry.database.read() as uow:
        return uow.access.login_lock(pair_key(username, REMOTE))[1]


def _user_exists(registry: Registry, name: str) -> bool:
    with registry.database.read() as uow:
        return uow.access.get_user(name) is not None


def test_a_failed_admin_change_writes_no_event(registry: Registry):
    registry.admin.add_user(CLI, "alice", PASSWORD)
    last = registry.outbox.last_id()
    with pytest.raises(Conflict):
        registry.admin.add_user(CLI, "alice", PASSWORD)
    assert registry.outbox.since(last) == []


def test_an_admin_change_writes_exactly_one_admin_action(registry: Registry):
    last = registry.outbox.last_id()
    registry.admin.add_user(CLI, "bob", PASSWORD, admin=True)
    (event,) = registry.outbox.since(last)
    assert (event["type"], event["actor"], event["payload"]["action"]) == (
        "AdminAction", "cli", "user.create")
    assert event["payload"]["detail"] == {"user": "bob", "admin": True}


def test_an_admin_change_whose_event_cannot_be_appended_is_rolled_back(registry: Registry):
    last = registry.outbox.last_id()
    with outbox_refuses(registry), pytest.raises(DatabaseError):
        registry.admin.add_user(CLI, "carol", PASSWORD)
    assert not _user_exists(registry, "carol")
    assert registry.outbox.since(last) == []
    registry.admin.add_user(CLI, "carol", PASSWORD)  # the name was never taken
    assert _user_exists(registry, "carol")


def test_a_member_change_and_its_event_commit_together(registry: Registry):
    registry.admin.add_user(CLI, "dave", PASSWORD)
    registry.admin.add_namespace(CLI, "team")
    with outbox_refuses(registry), pytest.raises(DatabaseError):
        registry.admin.set_member(CLI, "team", "dave", "developer")
    assert registry.admin.get_namespace(CLI, "team")["members"] == []
    last = registry.outbox.last_id()
    registry.admin.set_member(CLI, "team", "dave", "developer")
    assert [e["payload"]["action"] for e in registry.outbox.since(last)] == ["member.set"]


def test_a_failed_login_counts_and_records_its_event_together(registry: Registry):
    registry.admin.add_user(CLI, "erin", PASSWORD)
    last = registry.outbox.last_id()
    with pytest.raises(Unauthorized):
        _login(registry, "erin", "wrong-password", REMOTE, record=True)
    (event,) = registry.outbox.since(last)
    assert (event["type"], event["actor"], event["address"]) == ("Login", "erin", REMOTE)
    assert event["payload"]["outcome"] == "denied"
    assert _failures(registry, "erin") == 1
    # The event cannot be written: the failure is not counted either.
    with outbox_refuses(registry), pytest.raises(DatabaseError):
        _login(registry, "erin", "wrong-again", REMOTE, record=True)
    assert _failures(registry, "erin") == 1


def test_a_login_after_failures_resets_the_counter_with_its_event(registry: Registry):
    registry.admin.add_user(CLI, "frank", PASSWORD)
    with pytest.raises(Unauthorized):
        _login(registry, "frank", "wrong-password", REMOTE, record=True)
    with outbox_refuses(registry), pytest.raises(DatabaseError):
        _login(registry, "frank", PASSWORD, REMOTE, record=True)
    assert _failures(registry, "frank") == 1
    last = registry.outbox.last_id()
    principal = _login(registry, "frank", PASSWORD, REMOTE, record=True)
    assert principal.name == "frank" and _failures(registry, "frank") == 0
    (event,) = registry.outbox.since(last)
    assert (event["type"], event["payload"]["outcome"]) == ("Login", "success")


def test_a_user_update_is_all_or_nothing(registry: Registry):
    registry.admin.add_user(CLI, "alice", PASSWORD)
    alice = registry.auth.principal_from_claims("user", "alice")
    last = registry.outbox.last_id()
    # Alice may change her own password but not enable or disable herself: neither happens.
    with pytest.raises(AccessDenied):
        registry.admin.update_user(alice, "alice", password="another-horse-2", disabled=False)
    assert registry.outbox.since(last) == []
    assert _login(registry, "alice", PASSWORD, REMOTE, record=False).name == "alice"
    registry.admin.update_user(CLI, "alice", password="another-horse-2", disabled=True)
    assert [(e["type"], e["payload"]["action"]) for e in registry.outbox.since(last)] == [
        ("AdminAction", "user.password"), ("AdminAction", "user.disable")]
