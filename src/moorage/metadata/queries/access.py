"""Accounts, robots, namespaces, members, shared secrets, login throttling and audit rows."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, case, delete, select, update

from ..base import column_text
from ..rows import NamespaceRow, RobotRow, UserRow
from ..schema import (
    audit_events,
    login_failures,
    members,
    namespaces,
    robot_permissions,
    robots,
    secrets,
    users,
)

if TYPE_CHECKING:
    from ..uow import UnitOfWork

PURGE_CHANCE = 1 / 32  # of a failed login, to also delete forgotten counters

# Column lengths of audit_events (PostgreSQL enforces them; actors and references are hostile).
_AUDIT_LIMITS = {"actor": 160, "actor_kind": 16, "remote": 64, "action": 32, "repository": 255,
                 "reference": 200, "outcome": 16}


class AccessQueries:
    """Access control and auditing within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn
        self._insert = uow.store._insert

    # -- users --------------------------------------------------------------------------------

    def count_users(self) -> int:
        """0 when there is no account, else 1 (enough to know whether to bootstrap one)."""
        return len(self.conn.execute(select(users.c.id).limit(1)).all())

    def create_user(self, name: str, password_hash: str, is_admin: bool) -> bool:
        """Create an account; False when the name is taken."""
        # RETURNING tells whether a row went in: with the implicit RETURNING PostgreSQL's
        # dialect adds for the new id, rowcount is -1 there even when it did.
        created = self.conn.execute(
            self._insert(users)
            .values(name=name, password_hash=password_hash, is_admin=is_admin,
                    disabled=False, created_at=time.time())
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(users.c.name)
        ).first()
        return created is not None

    def get_user(self, name: str) -> UserRow | None:
        """The account `name`, None when there is none."""
        row = self.conn.execute(select(users).where(users.c.name == name)).first()
        return UserRow(*row) if row else None

    def list_users(self) -> list[UserRow]:
        """Every account, by name."""
        return [UserRow(*r) for r in self.conn.execute(select(users).order_by(users.c.name))]

    def update_user(self, name: str, **values: Any) -> bool:
        """Change password hash, admin flag or disabled flag; False when there is no such user."""
        result = self.conn.execute(update(users).where(users.c.name == name).values(**values))
        return result.rowcount == 1

    def replace_password_hash(self, name: str, old_hash: str, new_hash: str) -> bool:
        """Swap a user's password hash only if it is still `old_hash` (a password changed in
        between wins); True when swapped."""
        result = self.conn.execute(
            update(users).where(users.c.name == name, users.c.password_hash == old_hash)
            .values(password_hash=new_hash))
        return result.rowcount == 1

    # -- robots -------------------------------------------------------------------------------

    def create_robot(
        self,
        name: str,
        secret_hash: str,
        permissions: dict[str, frozenset[str]],
        description: str | None,
        created_by: str | None,
        expires_at: float | None,
    ) -> bool:
        """Create a robot with its namespace permissions; False when the name is taken."""
        robot_id = self.conn.execute(
            self._insert(robots)
            .values(name=name, secret_hash=secret_hash, description=description,
                    created_by=created_by, expires_at=expires_at, revoked=False,
                    created_at=time.time())
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(robots.c.id)
        ).scalar_one_or_none()
        if robot_id is None:
            return False
        self.conn.execute(
            robot_permissions.insert(),
            [{"robot_id": robot_id, "namespace": ns, "actions": ",".join(sorted(acts))}
             for ns, acts in permissions.items()],
        )
        return True

    def _robot(self, row: Any) -> RobotRow:
        perms = {
            ns: frozenset(a for a in acts.split(",") if a)
            for ns, acts in self.conn.execute(
                select(robot_permissions.c.namespace, robot_permissions.c.actions).where(
                    robot_permissions.c.robot_id == row.id
                )
            )
        }
        return RobotRow(row.id, row.name, row.secret_hash, row.description, row.created_by,
                        row.expires_at, row.revoked, row.created_at, permissions=perms)

    def get_robot(self, name: str) -> RobotRow | None:
        """The robot `name` (without its prefix), None when there is none."""
        row = self.conn.execute(select(robots).where(robots.c.name == name)).first()
        return self._robot(row) if row else None

    def list_robots(self) -> list[RobotRow]:
        """Every robot, by name."""
        rows = self.conn.execute(select(robots).order_by(robots.c.name)).all()
        return [self._robot(r) for r in rows]

    def revoke_robot(self, name: str) -> bool:
        """Mark a robot revoked; False when there is no such robot."""
        result = self.conn.execute(
            update(robots).where(robots.c.name == name).values(revoked=True))
        return result.rowcount == 1

    # -- namespaces and members ---------------------------------------------------------------

    def create_namespace(self, name: str, visibility: str, created_by: str | None) -> bool:
        """Create a namespace; False when the name is taken."""
        created = self.conn.execute(
            self._insert(namespaces)
            .values(name=name, visibility=visibility, robot_only_push=False,
                    created_by=created_by, created_at=time.time())
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(namespaces.c.name)
        ).first()
        return created is not None

    def get_namespace(self, name: str) -> NamespaceRow | None:
        """The namespace `name`, None when there is none."""
        row = self.conn.execute(select(namespaces).where(namespaces.c.name == name)).first()
        return NamespaceRow(*row) if row else None

    def list_namespaces(self) -> list[NamespaceRow]:
        """Every namespace, by name."""
        return [NamespaceRow(*r) for r in self.conn.execute(
            select(namespaces).order_by(namespaces.c.name))]

    def update_namespace(self, name: str, **values: Any) -> bool:
        """Change visibility or robot-only push; False when there is no such namespace."""
        result = self.conn.execute(
            update(namespaces).where(namespaces.c.name == name).values(**values))
        return result.rowcount == 1

    def set_member(self, namespace: str, user_id: int, role: str | None) -> None:
        """Give a user a role in a namespace, or remove them (role None)."""
        self.conn.execute(
            delete(members).where(members.c.namespace == namespace, members.c.user_id == user_id)
        )
        if role is not None:
            self.conn.execute(members.insert().values(namespace=namespace, user_id=user_id,
                                                      role=role))

    def role_of(self, namespace: str, user_id: int) -> str | None:
        """The user's role in the namespace, None when they are no member."""
        return self.conn.execute(
            select(members.c.role).where(members.c.namespace == namespace,
                                         members.c.user_id == user_id)
        ).scalar_one_or_none()

    def list_members(self, namespace: str) -> list[tuple[str, str]]:
        """(user name, role) of the namespace's members, by name."""
        return [(r[0], r[1]) for r in self.conn.execute(
            select(users.c.name, members.c.role)
            .join(users, users.c.id == members.c.user_id)
            .where(members.c.namespace == namespace)
            .order_by(users.c.name)
        )]

    def roles_of_user(self, user_id: int) -> dict[str, str]:
        """{namespace: role} of one user."""
        return {ns: role for ns, role in self.conn.execute(
            select(members.c.namespace, members.c.role).where(members.c.user_id == user_id)
        )}

    # -- shared secrets -----------------------------------------------------------------------

    def secret(self, name: str) -> bytes | None:
        """The named secret, None when it was never made."""
        return self.conn.execute(
            select(secrets.c.value).where(secrets.c.name == name)
        ).scalar_one_or_none()

    def create_secret(self, name: str, value: bytes) -> bytes:
        """Store `value` unless the secret exists; the stored value (the first writer's)."""
        self.conn.execute(
            self._insert(secrets)
            .values(name=name, value=value, created_at=time.time())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return self.conn.execute(
            select(secrets.c.value).where(secrets.c.name == name)).scalar_one()

    def replace_secret(self, name: str, old: bytes, new: bytes) -> bool:
        """Set the named secret to `new` if it is still `old` (sealing or re-sealing it)."""
        return bool(self.conn.execute(update(secrets).where(
            secrets.c.name == name, secrets.c.value == old).values(value=new)).rowcount)

    def secret_values(self) -> list[tuple[str, bytes]]:
        """(name, stored value) of every shared secret."""
        return [(str(r[0]), bytes(r[1])) for r in self.conn.execute(
            select(secrets.c.name, secrets.c.value).order_by(secrets.c.name))]

    # -- login throttling ---------------------------------------------------------------------

    def login_lock(self, key: str) -> tuple[float, int]:
        """(locked until, consecutive failures) of one failure counter; (0, 0) when unknown."""
        row = self.conn.execute(
            select(login_failures.c.locked_until, login_failures.c.failures).where(
                login_failures.c.key == key
            )
        ).first()
        return (float(row[0]), int(row[1])) if row else (0.0, 0)

    def record_login_failure(
        self,
        pair: str,
        address: str,
        forget_after: float,
        address_window: float,
        lockout: Callable[[int, int], float],
    ) -> float:
        """Count a failure for the pair and its address; returns when the pair unlocks.

        `lockout(pair_failures, address_failures)` gives the pair's lock in seconds. The pair
        counter restarts after `forget_after` without failures, the address counter after a
        fixed `address_window`.
        """
        now = time.time()
        c = login_failures.c
        at_address = self._bump(address, now, c.window_start <= now - address_window)
        at_pair = self._bump(pair, now, c.last_failure <= now - forget_after)
        delay = lockout(at_pair, at_address)
        until = now + delay if delay > 0 else 0.0
        if until:
            self.conn.execute(update(login_failures).where(c.key == pair)
                              .values(locked_until=until))
        if random.random() < PURGE_CHANCE:
            # Counters nobody failed on for a while are gone for good (an unbounded table of
            # sprayed names otherwise).
            self.conn.execute(delete(login_failures).where(
                c.last_failure <= now - max(forget_after, address_window)))
        return until

    def _bump(self, key: str, now: float, stale: ColumnElement[bool]) -> int:
        c = login_failures.c
        stmt = self._insert(login_failures).values(
            key=key, window_start=now, failures=1, last_failure=now, locked_until=0.0
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "failures": case((stale, 1), else_=c.failures + 1),
                "window_start": case((stale, now), else_=c.window_start),
                "locked_until": case((stale, 0.0), else_=c.locked_until),
                "last_failure": now,
            },
        ).returning(login_failures.c.failures)
        return int(self.conn.execute(upsert).scalar_one())

    def clear_failures(self, keys: list[str]) -> None:
        """Forget the failure counters `keys`."""
        self.conn.execute(delete(login_failures).where(login_failures.c.key.in_(keys)))

    # -- audit --------------------------------------------------------------------------------

    def append_audit(self, rows: list[dict[str, Any]]) -> None:
        """Write audit rows; a row whose event is already recorded is skipped (rows from the
        outbox are keyed by event id)."""
        if not rows:
            return
        values = [{**{k: column_text(v, _AUDIT_LIMITS.get(k, 1 << 20)) for k, v in r.items()},
                   "detail": json.dumps(r["detail"], default=str) if r.get("detail") else None}
                  for r in rows]
        self.conn.execute(
            self._insert(audit_events).on_conflict_do_nothing(index_elements=["event_id"]),
            values,
        )

    def query_audit(
        self,
        actor: str | None = None,
        action: str | None = None,
        repository: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before_id: int | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Audit events, newest first, filtered; `before_id` pages backwards, `after_id`
        forwards (the `limit` events just newer than it)."""
        order = audit_events.c.id.asc() if after_id is not None else audit_events.c.id.desc()
        query = select(audit_events).order_by(order).limit(limit)
        conds = []
        if actor is not None:
            conds.append(audit_events.c.actor == actor)
        if action is not None:
            conds.append(audit_events.c.action == action)
        if repository is not None:
            conds.append(audit_events.c.repository == repository)
        if outcome is not None:
            conds.append(audit_events.c.outcome == outcome)
        if since is not None:
            conds.append(audit_events.c.time >= since)
        if until is not None:
            conds.append(audit_events.c.time < until)
        if before_id is not None:
            conds.append(audit_events.c.id < before_id)
        if after_id is not None:
            conds.append(audit_events.c.id > after_id)
        if conds:
            query = query.where(*conds)
        out = []
        for r in self.conn.execute(query).mappings().all():
            event = dict(r)
            event.pop("event_id", None)
            event["detail"] = json.loads(event["detail"]) if event["detail"] else None
            out.append(event)
        return out[::-1] if after_id is not None else out
