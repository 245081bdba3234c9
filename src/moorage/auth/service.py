"""Who is asking and what they may do: accounts, robots, namespaces with roles, throttled logins."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..metadata.access_store import AccessStore, RobotRow
from ..oci.errors import Denied, TooManyRequests, Unauthorized
from .scopes import ALL_ACTIONS, DELETE, PULL, PUSH, ROLE_ACTIONS, Scope, namespace_of
from .secrets import hash_password, verify_password, verify_robot_secret
from .throttle import LoginThrottle, address_key, pair_key

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ROBOT_PREFIX = "robot$"
BASIC_CACHE_SECONDS = 60.0
POLICY_CACHE_SECONDS = 2.0
_VERBS = {PULL: "pulling", PUSH: "pushing", DELETE: "deleting"}
_MIN_ROLE = {PULL: "reader", PUSH: "developer", DELETE: "maintainer"}
_ROBOT_ONLY = {PUSH: "pushes", DELETE: "deletes"}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous one)."""

    kind: str  # user | robot | anonymous
    name: str
    user_id: int | None = None
    is_admin: bool = False
    robot_permissions: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Principal("anonymous", "anonymous")


def _check_robot_usable(robot: RobotRow, name: str) -> None:
    """Unauthorized, saying why, for a revoked or expired robot."""
    if robot.revoked:
        raise Unauthorized(f"{name} was revoked: ask a namespace admin for a new robot account")
    if robot.expires_at is not None and robot.expires_at <= time.time():
        expired = datetime.fromtimestamp(robot.expires_at, UTC).isoformat(timespec="seconds")
        raise Unauthorized(f"{name} expired at {expired}: ask a namespace admin for a new robot "
                           "account")


def _throttled(wait: float) -> TooManyRequests:
    seconds = max(math.ceil(wait), 1)
    return TooManyRequests(
        f"too many failed logins for this account from this address; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


class AuthService:
    """Authentication and the access policy."""

    def __init__(self, store: AccessStore, throttle: LoginThrottle | None = None) -> None:
        self.store = store
        self.throttle = throttle or LoginThrottle()
        self._basic_cache: dict[bytes, tuple[Principal, float]] = {}
        self._policy_cache: dict[tuple[str, str], tuple[frozenset[str], float]] = {}
        self._cache_key = os.urandom(32)

    # -- accounts -----------------------------------------------------------------------------

    def bootstrap_admin(self, password: str | None) -> str | None:
        """Create the first admin when there are no accounts; returns a generated password."""
        if self.store.count_users():
            return None
        generated = None
        if not password:
            import secrets

            password = generated = secrets.token_urlsafe(18)
        self.store.create_user("admin", hash_password(password), is_admin=True)
        return generated

    # -- authentication -----------------------------------------------------------------------

    async def login(self, username: str, password: str, remote: str | None) -> Principal:
        """Check a username and password (or robot name and secret); see auth/throttle.py."""
        if username.startswith(ROBOT_PREFIX):
            # 256 random bits cannot be guessed: no throttle, so no robot is ever locked out by
            # someone else's failures (its failures are still audited by the caller).
            return await self._checked(username, password)
        pair = pair_key(username, remote)
        # The throttle comes first, even for a password this worker has seen succeed.
        locked_until, failures = await asyncio.to_thread(self.store.login_lock, pair)
        wait = locked_until - time.time()
        if wait > 0:
            raise _throttled(wait)
        try:
            principal = await self._checked(username, password)
        except Unauthorized:
            t = self.throttle
            until = await asyncio.to_thread(
                self.store.record_login_failure, pair, address_key(remote), t.forget_after,
                t.address_window, t.lockout,
            )
            wait = until - time.time()
            if wait > 0:
                raise Unauthorized(
                    "invalid username or password; the next attempt for this account from this "
                    f"address must wait {max(math.ceil(wait), 1)} s"
                ) from None
            raise
        if failures:
            await asyncio.to_thread(self.store.clear_failures, [pair])
        return principal

    async def _checked(self, username: str, password: str) -> Principal:
        """The principal behind valid credentials (cached a while per worker) or Unauthorized."""
        cache_key = hmac.new(self._cache_key, f"{username}\0{password}".encode(),
                             hashlib.sha256).digest()
        cached = self._basic_cache.get(cache_key)
        if cached and cached[1] > time.time():
            return cached[0]
        principal = await asyncio.to_thread(self._check_credentials, username, password)
        if principal is None:
            raise Unauthorized("invalid username or password")
        self._basic_cache[cache_key] = (principal, time.time() + BASIC_CACHE_SECONDS)
        if len(self._basic_cache) > 10_000:
            self._basic_cache.clear()
        return principal

    def _check_credentials(self, username: str, password: str) -> Principal | None:
        if username.startswith(ROBOT_PREFIX):
            robot = self.store.get_robot(username[len(ROBOT_PREFIX):])
            ok = verify_robot_secret(robot.secret_hash if robot else None, password)
            if not ok or robot is None:
                return None
            # Only the holder of the right secret learns why it no longer works.
            _check_robot_usable(robot, username)
            return Principal("robot", username, robot_permissions=robot.permissions)
        user = self.store.get_user(username) if USERNAME_RE.match(username) else None
        ok = verify_password(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled:
            return None
        return Principal("user", user.name, user_id=user.id, is_admin=user.is_admin)

    def principal_from_claims(self, kind: str, subject: str) -> Principal:
        """Rebuild the caller behind a token (for refresh tokens and denial decisions)."""
        if kind == "anonymous":
            return ANONYMOUS
        if kind == "robot":
            robot = self.store.get_robot(subject[len(ROBOT_PREFIX):])
            if robot is None:
                raise Unauthorized(f"{subject} no longer exists")
            _check_robot_usable(robot, subject)
            return Principal("robot", subject, robot_permissions=robot.permissions)
        user = self.store.get_user(subject)
        if user is None or user.disabled:
            raise Unauthorized("account is disabled")
        return Principal("user", user.name, user_id=user.id, is_admin=user.is_admin)

    # -- policy -------------------------------------------------------------------------------

    def allowed_actions(self, principal: Principal, repository: str) -> frozenset[str]:
        """Everything `principal` may do on `repository` right now."""
        key = (f"{principal.kind}:{principal.name}", repository)
        cached = self._policy_cache.get(key)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        actions = self._compute_actions(principal, repository)
        self._policy_cache[key] = (actions, now + POLICY_CACHE_SECONDS)
        if len(self._policy_cache) > 50_000:
            self._policy_cache.clear()
        return actions

    def _compute_actions(self, principal: Principal, repository: str) -> frozenset[str]:
        ns_name = namespace_of(repository)
        namespace = self.store.get_namespace(ns_name)
        actions: set[str] = set()
        if namespace is not None and namespace.visibility == "public":
            actions.add(PULL)
        if principal.kind == "robot":
            actions |= principal.robot_permissions.get(ns_name, frozenset())
            return frozenset(actions)
        if principal.kind != "user":
            return frozenset(actions)
        if principal.is_admin:
            return ALL_ACTIONS
        if namespace is None:
            # A user's personal namespace is theirs to create by pushing to it.
            return frozenset({PULL, PUSH, DELETE}) if ns_name == principal.name else frozenset()
        role = self.store.role_of(ns_name, principal.user_id or -1)
        if role is not None:
            actions |= ROLE_ACTIONS[role]
        if namespace.robot_only_push:
            actions -= {PUSH, DELETE}
        return frozenset(actions)

    def explain_denial(self, principal: Principal, repository: str, action: str) -> str:
        """Why `principal` may not `action` on `repository`, in one sentence a user can act on.

        A private namespace and one that does not exist get the same answer, so a denial never
        tells an outsider which private namespaces exist.
        """
        ns_name = namespace_of(repository)
        verb = _VERBS.get(action, action)
        if principal.kind == "robot":
            granted = principal.robot_permissions.get(ns_name)
            if not granted:
                return (f"{principal.name} has no permissions in namespace {ns_name}: "
                        f"{verb} needs a robot with {action} there")
            return (f"{principal.name} may only {','.join(sorted(granted))} in namespace "
                    f"{ns_name}: {verb} needs a robot with {action} there")
        if principal.kind != "user":
            return f"anonymous callers may not {action} {repository}: log in first"
        namespace = self.store.get_namespace(ns_name)
        role = self.store.role_of(ns_name, principal.user_id or -1) if namespace else None
        if namespace is None or (namespace.visibility != "public" and role is None):
            return (f"{principal.name} is not a member of namespace {ns_name} (private or "
                    f"nonexistent): ask a namespace admin for a role")
        if role is not None and action in ROLE_ACTIONS[role]:
            if namespace.robot_only_push and action in _ROBOT_ONLY:
                return f"namespace {ns_name} accepts {_ROBOT_ONLY[action]} from robot accounts only"
            # A decision cached (for seconds) from before a role change.
            return (f"{principal.name} may not {action} {repository} yet: its permissions changed "
                    "a moment ago, try again")
        needed = _MIN_ROLE.get(action, "admin")
        has = f"has role {role}" if role is not None else "has no role"
        return f"{principal.name} {has} in namespace {ns_name}: {verb} needs {needed} or above"

    def grant(self, principal: Principal, requested: list[Scope]) -> list[Scope]:
        """What a token may carry: the intersection of what was asked and what is allowed."""
        granted = []
        for scope in requested:
            if scope.type == "repository":
                actions = scope.actions & self.allowed_actions(principal, scope.name)
            elif scope.type == "registry" and scope.name == "catalog" and not principal.anonymous:
                actions = scope.actions & frozenset({"*"})
            else:
                actions = frozenset()
            if actions:
                granted.append(Scope(scope.type, scope.name, actions))
        return granted

    def ensure_namespace(self, principal: Principal, repository: str) -> None:
        """Create the namespace on first push when the caller may create it."""
        ns_name = namespace_of(repository)
        if self.store.get_namespace(ns_name) is not None:
            return
        if principal.kind == "user" and not principal.is_admin:
            principal = self.principal_from_claims("user", principal.name)  # from a token
        if principal.kind == "user" and (principal.is_admin or ns_name == principal.name):
            if self.store.create_namespace(ns_name, "private", principal.name):
                user = self.store.get_user(principal.name)
                if user is not None and not principal.is_admin:
                    self.store.set_member(ns_name, user.id, "admin")
            self._policy_cache.clear()
            return
        raise Denied(f"namespace {ns_name} does not exist: a server admin must create it before "
                     f"{principal.name} can push to it")

    def can_administer(self, principal: Principal, namespace: str) -> bool:
        """Server admins, and namespace admins, manage a namespace's members and settings."""
        if principal.kind != "user":
            return False
        if principal.is_admin:
            return True
        return self.store.role_of(namespace, principal.user_id or -1) == "admin"

    def forget_cached_policy(self) -> None:
        """Drop cached decisions after a permission change in this process."""
        self._policy_cache.clear()
        self._basic_cache.clear()
