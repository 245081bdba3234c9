"""Managing users, namespaces, members and robots, for the CLI and the management API alike."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from ..events.audit import AuditLog, admin_action
from ..events.types import records
from ..metadata.uow import Database, UnitOfWork
from ..oci.errors import NameInvalid, RegistryError
from ..oci.reference import validate_name
from .authorizer import SERVER, Action, Authorizer, account, namespace
from .identity import CLI, Principal
from .scopes import ALL_ACTIONS, ROLES
from .secrets import hash_password, hash_robot_secret, new_robot_secret
from .service import OIDC_USERNAME, ROBOT_PREFIX, USERNAME_RE, AuthService

if TYPE_CHECKING:
    from ..metadata.queries.access import AccessQueries
    from ..metadata.rows import NamespaceRow

__all__ = ["CLI", "AdminService", "Conflict", "NotFound"]
ROBOT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 8
T = TypeVar("T")


class NotFound(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "not found"


class Conflict(RegistryError):
    code, status, default_message = "DENIED", 409, "already exists"


class AdminService:
    """Every management operation checks the actor's rights; each change appends its
    AdminAction event in its own write, so the change and its audit record commit together."""

    def __init__(self, database: Database, auth: AuthService, audit: AuditLog,
                 authorizer: Authorizer) -> None:
        self.database = database
        self.auth = auth
        self.audit = audit
        self.authorizer = authorizer

    def _require_admin(self, actor: Principal) -> None:
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER)

    def _require_ns_admin(self, actor: Principal, name: str) -> None:
        self.authorizer.require(actor, Action.ADMIN_NAMESPACE, namespace(name))

    def _may_administer(self, actor: Principal, name: str) -> bool:
        return self.authorizer.allows(actor, Action.ADMIN_NAMESPACE, namespace(name))

    @staticmethod
    def _emit(uow: UnitOfWork, actor: Principal, action: str, detail: dict[str, Any]) -> None:
        """Queue the change's AdminAction in its write (it commits with the change)."""
        uow.emit(records(admin_action(action=action, outcome="success", actor=actor.name,
                                      actor_kind=actor.kind, remote=None, detail=detail)))

    def _forget(self) -> None:
        """After a committed change: drop this process's cached logins and decisions."""
        self.auth.forget_cached_logins()
        self.authorizer.forget()

    # -- users --------------------------------------------------------------------------------

    def add_user(self, actor: Principal, name: str, password: str, admin: bool = False) -> None:
        """Create an account with an argon2id-hashed password."""
        self._require_admin(actor)
        if not USERNAME_RE.match(name) or name in ("cli", OIDC_USERNAME):
            raise NameInvalid("user names are 1-64 of a-z 0-9 . _ - starting with a letter or "
                              f"digit, other than cli and {OIDC_USERNAME}")
        _check_password(password)
        with self.database.write() as uow:
            if not uow.access.create_user(name, hash_password(password), admin):
                raise Conflict(f"user {name!r} exists")
            self._emit(uow, actor, "user.create", {"user": name, "admin": admin})
        self._forget()

    def sso_account(self, name: str, create: bool, admin: bool | None, issuer: str) -> bool:
        """Ready the account `name` for a UI single sign-on from `issuer`: created (a plain
        user, unusable password) when missing and `create`; its server-admin flag set to
        `admin` unless None. False when it does not exist and is not created."""
        actor = Principal("system", f"sso:{issuer}"[:200], is_admin=True)
        with self.database.write() as uow:
            user = uow.access.get_user(name)
            if user is None:
                if not create:
                    return False
                uow.access.create_user(name, hash_password(secrets.token_urlsafe(32)),
                                       bool(admin))
                self._emit(uow, actor, "user.create", {"user": name, "admin": bool(admin),
                                                       "by": "sso"})
            elif admin is not None and user.is_admin != admin:
                uow.access.update_user(name, is_admin=admin)
                self._emit(uow, actor, "user.admin", {"user": name, "admin": admin, "by": "sso"})
            else:
                return True
        self._forget()
        return True

    def list_users(self, actor: Principal) -> list[dict[str, Any]]:
        self._require_admin(actor)
        return [{"name": u.name, "admin": u.is_admin, "disabled": u.disabled,
                 "created_at": u.created_at} for u in self._read(lambda a: a.list_users())]

    def set_password(self, actor: Principal, name: str, password: str) -> None:
        self.authorizer.require(actor, Action.ACCOUNT, account(name))
        _check_password(password)
        password_hash = hash_password(password)
        with self.database.write() as uow:
            if not uow.access.update_user(name, password_hash=password_hash):
                raise NotFound(f"no user {name!r}")
            self._emit(uow, actor, "user.password", {"user": name})
        self._forget()

    def set_disabled(self, actor: Principal, name: str, disabled: bool) -> None:
        self._require_admin(actor)
        with self.database.write() as uow:
            if not uow.access.update_user(name, disabled=disabled):
                raise NotFound(f"no user {name!r}")
            self._emit(uow, actor, "user.disable" if disabled else "user.enable", {"user": name})
        self._forget()

    def update_user(self, actor: Principal, name: str, password: str | None = None,
                    disabled: bool | None = None) -> None:
        """Change a password and/or the disabled flag in one transaction: every check first,
        then both changes with their events, or nothing."""
        password_hash = None
        if password is not None:
            self.authorizer.require(actor, Action.ACCOUNT, account(name))
            _check_password(password)
            password_hash = hash_password(password)
        if disabled is not None:
            self._require_admin(actor)
        if password_hash is None and disabled is None:
            self.authorizer.require(actor, Action.ACCOUNT, account(name))
            if self._read(lambda a: a.get_user(name)) is None:
                raise NotFound(f"no user {name!r}")
            return
        with self.database.write() as uow:
            if password_hash is not None:
                if not uow.access.update_user(name, password_hash=password_hash):
                    raise NotFound(f"no user {name!r}")
                self._emit(uow, actor, "user.password", {"user": name})
            if disabled is not None:
                if not uow.access.update_user(name, disabled=disabled):
                    raise NotFound(f"no user {name!r}")
                self._emit(uow, actor, "user.disable" if disabled else "user.enable",
                           {"user": name})
        self._forget()

    # -- namespaces ---------------------------------------------------------------------------

    def add_namespace(self, actor: Principal, name: str, visibility: str = "private") -> None:
        self._require_admin(actor)
        if "/" in name:
            raise NameInvalid("a namespace is one path component")
        validate_name(name)
        _check_visibility(visibility)
        with self.database.write() as uow:
            if not uow.access.create_namespace(name, visibility, actor.name):
                raise Conflict(f"namespace {name!r} exists")
            self._emit(uow, actor, "namespace.create",
                       {"namespace": name, "visibility": visibility})
        self._forget()

    def list_namespaces(self, actor: Principal) -> list[dict[str, Any]]:
        with self.database.read() as uow:
            roles = uow.access.roles_of_user(actor.user_id) if actor.user_id else {}
            every = uow.access.list_namespaces()
        return [{**asdict(ns), "role": roles.get(ns.name)} for ns in every
                if self.authorizer.allows(actor, Action.VIEW_NAMESPACE, namespace(ns.name))]

    def get_namespace(self, actor: Principal, name: str) -> dict[str, Any]:
        ns = self._namespace(name)
        # Hidden, not refused: an outsider does not learn that a private namespace exists.
        if ns is None or not self.authorizer.allows(actor, Action.VIEW_NAMESPACE, namespace(name)):
            raise NotFound(f"no namespace {name!r}")
        return {**asdict(ns), "members": [{"user": u, "role": r}
                                          for u, r in self._read(lambda a: a.list_members(name))]}

    def update_namespace(self, actor: Principal, name: str, visibility: str | None = None,
                         robot_only_push: bool | None = None) -> dict[str, Any]:
        """Change a namespace's visibility and/or robot-only pushes; the namespace as it is now."""
        self._require_ns_admin(actor, name)
        values: dict[str, Any] = {}
        if visibility is not None:
            _check_visibility(visibility)
            values["visibility"] = visibility
        if robot_only_push is not None:
            values["robot_only_push"] = bool(robot_only_push)
        with self.database.write() as uow:
            if values and not uow.access.update_namespace(name, **values):
                raise NotFound(f"no namespace {name!r}")
            self._emit(uow, actor, "namespace.update", {"namespace": name, **values})
        self._forget()
        return self.get_namespace(actor, name)

    def set_member(self, actor: Principal, namespace: str, user: str, role: str | None) -> None:
        """Give `user` a role in `namespace`, or remove them with role None."""
        self._require_ns_admin(actor, namespace)
        if role is not None and role not in ROLES:
            raise RegistryError(f"role must be one of {', '.join(ROLES)}")
        with self.database.write() as uow:
            if uow.access.get_namespace(namespace) is None:
                raise NotFound(f"no namespace {namespace!r}")
            account = uow.access.get_user(user)
            if account is None:
                raise NotFound(f"no user {user!r}")
            uow.access.set_member(namespace, account.id, role)
            self._emit(uow, actor, "member.set" if role else "member.remove",
                       {"namespace": namespace, "user": user, "role": role})
        self._forget()

    # -- robots -------------------------------------------------------------------------------

    def add_robot(self, actor: Principal, name: str, permissions: dict[str, list[str]],
                  expires_in: float | None = None, description: str | None = None
                  ) -> dict[str, Any]:
        """Create a robot account; the secret is in the result and nowhere else, ever."""
        if not ROBOT_NAME_RE.match(name):
            raise NameInvalid("robot names are 1-64 of a-z 0-9 . _ -")
        if not permissions:
            raise RegistryError("a robot needs at least one namespace permission")
        perms: dict[str, frozenset[str]] = {}
        for ns_name, actions in permissions.items():
            self._require_ns_admin(actor, ns_name)
            if self._namespace(ns_name) is None:
                raise NotFound(f"no namespace {ns_name!r}")
            wanted = frozenset(actions)
            if not wanted or not wanted <= ALL_ACTIONS:
                raise RegistryError(f"actions must be among {sorted(ALL_ACTIONS)}")
            perms[ns_name] = wanted
        secret = new_robot_secret()
        expires_at = time.time() + expires_in if expires_in else None
        secret_hash = hash_robot_secret(secret)
        with self.database.write() as uow:
            if not uow.access.create_robot(name, secret_hash, perms, description, actor.name,
                                           expires_at):
                raise Conflict(f"robot {name!r} exists")
            self._emit(uow, actor, "robot.create",
                       {"robot": name, "permissions": {k: sorted(v) for k, v in perms.items()},
                        "expires_at": expires_at})
        self._forget()
        return {"name": ROBOT_PREFIX + name, "secret": secret, "expires_at": expires_at}

    def list_robots(self, actor: Principal) -> list[dict[str, Any]]:
        out = []
        for robot in self._read(lambda a: a.list_robots()):
            if all(self._may_administer(actor, ns) for ns in robot.permissions):
                out.append({"name": ROBOT_PREFIX + robot.name, "description": robot.description,
                            "permissions": {k: sorted(v) for k, v in robot.permissions.items()},
                            "expires_at": robot.expires_at, "revoked": robot.revoked,
                            "created_by": robot.created_by, "created_at": robot.created_at})
        return out

    def revoke_robot(self, actor: Principal, name: str) -> None:
        bare = name.removeprefix(ROBOT_PREFIX)
        robot = self._read(lambda a: a.get_robot(bare))
        if robot is None:
            raise NotFound(f"no robot {name!r}")
        for ns_name in robot.permissions:
            self._require_ns_admin(actor, ns_name)
        with self.database.write() as uow:
            if not uow.access.revoke_robot(bare):
                raise NotFound(f"no robot {name!r}")
            self._emit(uow, actor, "robot.revoke", {"robot": name})
        self._forget()

    # -- audit --------------------------------------------------------------------------------

    def audit_events(self, caller: Principal, **filters: Any) -> list[dict[str, Any]]:
        self._require_admin(caller)
        return self.audit.query(**filters)

    def _namespace(self, name: str) -> NamespaceRow | None:
        with self.database.read() as uow:
            return uow.access.get_namespace(name)

    def _read(self, query: Callable[[AccessQueries], T]) -> T:
        """One read of the access queries."""
        with self.database.read() as uow:
            return query(uow.access)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD or len(password) > 1024:
        raise RegistryError(f"passwords are {MIN_PASSWORD} to 1024 characters")


def _check_visibility(visibility: str) -> None:
    if visibility not in ("public", "private"):
        raise RegistryError("visibility is public or private")
