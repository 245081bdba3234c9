"""Queries for accounts, robots, namespaces, members, shared secrets, login throttling and audit."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update

from .base import StoreBase
from .schema import (
    audit_events,
    login_failures,
    members,
    namespaces,
    robot_permissions,
    robots,
    secrets,
    users,
)


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    password_hash: str
    is_admin: bool
    disabled: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class RobotRow:
    id: int
    name: str
    secret_hash: str
    description: str | None
    created_by: str | None
    expires_at: float | None
    revoked: bool
    created_at: float
    permissions: dict[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class NamespaceRow:
    name: str
    visibility: str
    robot_only_push: bool
    created_by: str | None
    created_at: float


class AccessStore(StoreBase):
    """All SQL of access control and auditing."""

    # -- users --------------------------------------------------------------------------------

    def count_users(self) -> int:
        with self._read() as conn:
            return len(conn.execute(select(users.c.id).limit(1)).all())

    def create_user(self, name: str, password_hash: str, is_admin: bool) -> bool:
        """Create an account; False when the name is taken."""
        with self._write() as conn:
            result = conn.execute(
                self._insert(users)
                .values(name=name, password_hash=password_hash, is_admin=is_admin,
                        disabled=False, created_at=time.time())
                .on_conflict_do_nothing(index_elements=["name"])
            )
        return result.rowcount == 1

    def get_user(self, name: str) -> UserRow | None:
        with self._read() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        return UserRow(*row) if row else None

    def list_users(self) -> list[UserRow]:
        with self._read() as conn:
            return [UserRow(*r) for r in conn.execute(select(users).order_by(users.c.name))]

    def update_user(self, name: str, **values: Any) -> bool:
        """Change password hash, admin flag or disabled flag."""
        with self._write() as conn:
            result = conn.execute(update(users).where(users.c.name == name).values(**values))
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
        with self._write() as conn:
            robot_id = conn.execute(
                self._insert(robots)
                .values(name=name, secret_hash=secret_hash, description=description,
                        created_by=created_by, expires_at=expires_at, revoked=False,
                        created_at=time.time())
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(robots.c.id)
            ).scalar_one_or_none()
            if robot_id is None:
                return False
            conn.execute(
                robot_permissions.insert(),
                [{"robot_id": robot_id, "namespace": ns, "actions": ",".join(sorted(acts))}
                 for ns, acts in permissions.items()],
            )
        return True

    def _robot(self, conn: Connection, row: Any) -> RobotRow:
        perms = {
            ns: frozenset(a for a in acts.split(",") if a)
            for ns, acts in conn.execute(
                select(robot_permissions.c.namespace, robot_permissions.c.actions).where(
                    robot_permissions.c.robot_id == row.id
                )
            )
        }
        return RobotRow(*row, permissions=perms)

    def get_robot(self, name: str) -> RobotRow | None:
        with self._read() as conn:
            row = conn.execute(select(robots).where(robots.c.name == name)).first()
            return self._robot(conn, row) if row else None

    def list_robots(self) -> list[RobotRow]:
        with self._read() as conn:
            rows = conn.execute(select(robots).order_by(robots.c.name)).all()
            return [self._robot(conn, r) for r in rows]

    def revoke_robot(self, name: str) -> bool:
        with self._write() as conn:
            result = conn.execute(update(robots).where(robots.c.name == name).values(revoked=True))
        return result.rowcount == 1

    # -- namespaces and members ---------------------------------------------------------------

    def create_namespace(self, name: str, visibility: str, created_by: str | None) -> bool:
        with self._write() as conn:
            result = conn.execute(
                self._insert(namespaces)
                .values(name=name, visibility=visibility, robot_only_push=False,
                        created_by=created_by, created_at=time.time())
                .on_conflict_do_nothing(index_elements=["name"])
            )
        return result.rowcount == 1

    def get_namespace(self, name: str) -> NamespaceRow | None:
        with self._read() as conn:
            row = conn.execute(select(namespaces).where(namespaces.c.name == name)).first()
        return NamespaceRow(*row) if row else None

    def list_namespaces(self) -> list[NamespaceRow]:
        with self._read() as conn:
            return [NamespaceRow(*r) for r in conn.execute(
                select(namespaces).order_by(namespaces.c.name))]

    def update_namespace(self, name: str, **values: Any) -> bool:
        with self._write() as conn:
            result = conn.execute(
                update(namespaces).where(namespaces.c.name == name).values(**values)
            )
        return result.rowcount == 1

    def set_member(self, namespace: str, user_id: int, role: str | None) -> None:
        """Give a user a role in a namespace, or remove them (role None)."""
        with self._write() as conn:
            conn.execute(
                delete(members).where(members.c.namespace == namespace,
                                      members.c.user_id == user_id)
            )
            if role is not None:
                conn.execute(members.insert().values(namespace=namespace, user_id=user_id,
                                                     role=role))

    def role_of(self, namespace: str, user_id: int) -> str | None:
        with self._read() as conn:
            return conn.execute(
                select(members.c.role).where(members.c.namespace == namespace,
                                             members.c.user_id == user_id)
            ).scalar_one_or_none()

    def list_members(self, namespace: str) -> list[tuple[str, str]]:
        with self._read() as conn:
            return [tuple(r) for r in conn.execute(
                select(users.c.name, members.c.role)
                .join(users, users.c.id == members.c.user_id)
                .where(members.c.namespace == namespace)
                .order_by(users.c.name)
            )]

    def roles_of_user(self, user_id: int) -> dict[str, str]:
        with self._read() as conn:
            return dict(conn.execute(
                select(members.c.namespace, members.c.role).where(members.c.user_id == user_id)
            ).all())

    # -- shared secrets -----------------------------------------------------------------------

    def get_or_create_secret(self, name: str, make: Any) -> bytes:
        """The named secret; the first caller's `make()` wins when several nodes race."""
        with self._read() as conn:
            value = conn.execute(
                select(secrets.c.value).where(secrets.c.name == name)
            ).scalar_one_or_none()
        if value is not None:
            return value
        with self._write() as conn:
            conn.execute(
                self._insert(secrets)
                .values(name=name, value=make(), created_at=time.time())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            return conn.execute(select(secrets.c.value).where(secrets.c.name == name)).scalar_one()

    # -- login throttling ---------------------------------------------------------------------

    def blocked_until(self, keys: list[str], limit: int, window: float) -> float:
        """When the most restricted key unblocks (0 when none is over `limit`)."""
        now = time.time()
        with self._read() as conn:
            rows = conn.execute(
                select(login_failures.c.window_start, login_failures.c.failures).where(
                    login_failures.c.key.in_(keys)
                )
            ).all()
        until = 0.0
        for start, failures in rows:
            if failures >= limit and start + window > now:
                until = max(until, start + window)
        return until

    def record_failure(self, keys: list[str], window: float) -> None:
        now = time.time()
        with self._write() as conn:
            for key in keys:
                row = conn.execute(
                    select(login_failures.c.window_start).where(login_failures.c.key == key)
                ).first()
                if row is None or row[0] + window <= now:
                    conn.execute(delete(login_failures).where(login_failures.c.key == key))
                    conn.execute(login_failures.insert().values(key=key, window_start=now,
                                                                failures=1))
                else:
                    conn.execute(
                        update(login_failures).where(login_failures.c.key == key)
                        .values(failures=login_failures.c.failures + 1)
                    )

    def clear_failures(self, keys: list[str]) -> None:
        with self._write() as conn:
            conn.execute(delete(login_failures).where(login_failures.c.key.in_(keys)))

    # -- audit --------------------------------------------------------------------------------

    def append_audit(self, events: list[dict[str, Any]]) -> None:
        """Write a batch of audit events in one transaction."""
        if not events:
            return
        rows = [{**e, "detail": json.dumps(e["detail"]) if e.get("detail") else None}
                for e in events]
        with self._write() as conn:
            conn.execute(audit_events.insert(), rows)

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
    ) -> list[dict[str, Any]]:
        """Audit events, newest first, filtered; `before_id` pages backwards."""
        query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
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
        if conds:
            query = query.where(*conds)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        out = []
        for r in rows:
            event = dict(r)
            event["detail"] = json.loads(event["detail"]) if event["detail"] else None
            out.append(event)
        return out
