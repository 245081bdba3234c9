"""Who is asking: accounts, robots, throttled logins (what they may do: auth/authorizer.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import os
import re
import time

from ..metadata.access_store import AccessStore, RobotRow
from ..oci.errors import TooManyRequests, Unauthorized
from .authorizer import Action, Authorizer, namespace
from .identity import ANONYMOUS, CLI, SYSTEM, Principal, robot_unusable_reason
from .scopes import namespace_of
from .secrets import hash_password, verify_password, verify_robot_secret
from .throttle import LoginThrottle, address_key, pair_key

__all__ = ["ANONYMOUS", "CLI", "SYSTEM", "AuthService", "Principal"]

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ROBOT_PREFIX = "robot$"
BASIC_CACHE_SECONDS = 60.0


def _check_robot_usable(robot: RobotRow, name: str) -> None:
    """Unauthorized, saying why, for a revoked or expired robot."""
    reason = robot_unusable_reason(robot, name)
    if reason is not None:
        raise Unauthorized(reason)


def _throttled(wait: float) -> TooManyRequests:
    seconds = max(math.ceil(wait), 1)
    return TooManyRequests(
        f"too many failed logins for this account from this address; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


KNOWN_NAMESPACES = 10_000  # namespaces a worker remembers as existing


class AuthService:
    """Authentication: credentials and tokens' subjects to principals."""

    def __init__(self, store: AccessStore, throttle: LoginThrottle | None = None) -> None:
        self.store = store
        self.throttle = throttle or LoginThrottle()
        self._basic_cache: dict[bytes, tuple[Principal, float]] = {}
        self._cache_key = os.urandom(32)
        # Namespaces are never deleted, so one seen to exist exists for good: a push skips the
        # read (bounded: a worker forgets them all past KNOWN_NAMESPACES and reads again).
        self._known_namespaces: set[str] = set()

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
            return Principal("robot", username)
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
            return Principal("robot", subject)
        user = self.store.get_user(subject)
        if user is None or user.disabled:
            raise Unauthorized("account is disabled")
        return Principal("user", user.name, user_id=user.id, is_admin=user.is_admin)

    def namespace_known(self, repository: str) -> bool:
        """True when this worker has seen the repository's namespace exist (no I/O)."""
        return namespace_of(repository) in self._known_namespaces

    def ensure_namespace(self, principal: Principal, repository: str,
                         authorizer: Authorizer) -> bool:
        """Create the namespace on first push when the caller may; True when it was created."""
        ns_name = namespace_of(repository)
        if ns_name in self._known_namespaces:
            return False
        if self.store.get_namespace(ns_name) is not None:
            self._remember_namespace(ns_name)
            return False
        if principal.kind == "user" and not principal.is_admin:
            principal = self.principal_from_claims("user", principal.name)  # from a token
        authorizer.require(principal, Action.CREATE_NAMESPACE, namespace(ns_name))
        if self.store.create_namespace(ns_name, "private", principal.name):
            user = self.store.get_user(principal.name)
            if user is not None and not principal.is_admin:
                self.store.set_member(ns_name, user.id, "admin")
        authorizer.forget()
        self._remember_namespace(ns_name)
        return True

    def _remember_namespace(self, name: str) -> None:
        if len(self._known_namespaces) >= KNOWN_NAMESPACES:
            self._known_namespaces.clear()
        self._known_namespaces.add(name)

    def forget_cached_logins(self) -> None:
        """Drop cached credential checks after an account change in this process."""
        self._basic_cache.clear()
