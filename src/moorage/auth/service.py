"""Who is asking: accounts, robots, throttled logins (what they may do: auth/authorizer.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..events.types import Actor, Login, UnusualActivity, records
from ..metadata.rows import RobotRow, UserRow
from ..metadata.uow import Database, UnitOfWork
from ..metrics.alerts import LOGIN_FAILURES as LOGIN_FAILURES_ALERT
from ..metrics.alerts import count_alert
from ..oci.errors import RegistryError, TooManyRequests, Unauthorized
from .authorizer import Action, Authorizer, namespace
from .identity import ANONYMOUS, CLI, SYSTEM, Principal, robot_unusable_reason
from .scopes import namespace_of
from .sealing import NoSecretsKey, Sealer
from .secrets import (
    hash_password,
    password_needs_rehash,
    verify_password,
    verify_robot_secret,
)
from .throttle import LoginThrottle, address_key, pair_key

if TYPE_CHECKING:
    from .oidc import OidcService

__all__ = ["ANONYMOUS", "CLI", "SYSTEM", "AuthService", "Principal"]

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ROBOT_PREFIX = "robot$"
OIDC_USERNAME = "oidc"  # its password is an OIDC ID token (auth/oidc.py)
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

    def __init__(self, database: Database, throttle: LoginThrottle | None = None,
                 oidc: Callable[[], OidcService] | None = None,
                 sealer: Callable[[], Sealer] | None = None) -> None:
        self.database = database
        self._sealer = sealer  # seals the shared secrets at rest (see shared_secret)
        self.throttle = throttle or LoginThrottle()
        self._oidc = oidc  # built on the first OIDC login only
        self._basic_cache: dict[bytes, tuple[Principal, float]] = {}
        self._cache_key = os.urandom(32)
        # Namespaces are never deleted, so one seen to exist exists for good: a push skips the
        # read (bounded: a worker forgets them all past KNOWN_NAMESPACES and reads again).
        self._known_namespaces: set[str] = set()

    # -- accounts -----------------------------------------------------------------------------

    def bootstrap_admin(self, password: str | None) -> str | None:
        """Create the first admin when there are no accounts; returns a generated password."""
        with self.database.read() as uow:
            if uow.access.count_users():
                return None
        generated = None
        if not password:
            import secrets

            password = generated = secrets.token_urlsafe(18)
        with self.database.write() as uow:
            if uow.access.count_users():
                return None
            uow.access.create_user("admin", hash_password(password), is_admin=True)
        return generated

    def shared_secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The named secret (e.g. the token signing key); the first `make()` to be stored wins
        when several nodes race. Stored sealed under the secrets key (auth/sealing.py) when
        one is set up; a value stored in the clear before is sealed in place on first read.
        Without a key (a shared database without MOORAGE_SECRETS_KEY) it stays in the clear."""
        sealer = self._secrets_sealer()
        with self.database.read() as uow:
            stored = uow.access.secret(name)
        if stored is not None:
            if stored.startswith(SEALED_SECRET):
                if sealer is None:
                    raise NoSecretsKey(f"the secret {name!r} is sealed: this server needs the "
                                       "secrets key (MOORAGE_SECRETS_KEY) to read it")
                return sealer.unseal(stored[len(SEALED_SECRET):].decode())
            if sealer is not None:
                with self.database.write() as uow:
                    uow.access.replace_secret(name, stored, _sealed(sealer, stored))
            return stored
        value = make()
        with self.database.write() as uow:
            kept = uow.access.create_secret(name, _sealed(sealer, value) if sealer else value)
        if kept.startswith(SEALED_SECRET):
            assert sealer is not None
            return sealer.unseal(kept[len(SEALED_SECRET):].decode())
        return kept

    def _secrets_sealer(self) -> Sealer | None:
        if self._sealer is None:
            return None
        try:
            return self._sealer()
        except NoSecretsKey:
            return None

    # -- authentication -----------------------------------------------------------------------

    async def login(self, username: str, password: str, remote: str | None,
                    record: bool = False) -> Principal:
        """Check a username and password (or robot name and secret); see auth/throttle.py.

        With `record`, a Login event (success or denied) is appended in the write of the
        throttle's change (a failure's count, a success's reset), or in one of its own.
        """
        if username == OIDC_USERNAME:
            # A signed ID token cannot be guessed either: no throttle, so a CI runner's shared
            # address is never locked out by another job's stale token.
            if self._oidc is None:
                raise Unauthorized("OIDC workload identity is not configured here")
            return await asyncio.to_thread(self._oidc().exchange, password, remote, record)
        if username.startswith(ROBOT_PREFIX):
            # 256 random bits cannot be guessed: no throttle, so no robot is ever locked out by
            # someone else's failures (its failures are still audited).
            try:
                principal = await self._checked(username, password)
            except Unauthorized as exc:
                if record:
                    await asyncio.to_thread(self._record_denied, username, remote, exc)
                raise
            if record:
                await asyncio.to_thread(self._succeeded, principal, None, remote, record)
            return principal
        pair = pair_key(username, remote)
        # The throttle comes first, even for a password this worker has seen succeed.
        locked_until, failures = await asyncio.to_thread(self._login_lock, pair)
        wait = locked_until - time.time()
        if wait > 0:
            throttled = _throttled(wait)
            if record:
                await asyncio.to_thread(self._record_denied, username, remote, throttled)
            raise throttled
        try:
            principal = await self._checked(username, password)
        except Unauthorized as exc:
            raise await asyncio.to_thread(self._failed, username, pair, remote, exc,
                                          record) from None
        if failures or record:
            await asyncio.to_thread(self._succeeded, principal, pair if failures else None,
                                    remote, record)
        return principal

    def _login_lock(self, pair: str) -> tuple[float, int]:
        with self.database.read() as uow:
            return uow.access.login_lock(pair)

    def _failed(self, username: str, pair: str, remote: str | None, exc: Unauthorized,
                record: bool) -> Unauthorized:
        """Count a failed password login (and, with `record`, its event) in one write; the
        error to answer with."""
        t = self.throttle
        at_address = 0

        def lockout(pair_failures: int, address_failures: int) -> float:
            nonlocal at_address
            at_address = address_failures
            return t.lockout(pair_failures, address_failures)

        alert = False
        with self.database.write() as uow:
            until = uow.access.record_login_failure(pair, address_key(remote), t.forget_after,
                                                    t.address_window, lockout)
            # Once per window and address: when its count reaches the threshold.
            alert = 0 < t.alert_address_failures == at_address
            if alert:
                uow.emit(records(UnusualActivity(
                    actor=Actor(None, None, remote), kind=LOGIN_FAILURES_ALERT,
                    detail={"failures": at_address, "window_seconds": t.address_window,
                            "last_username": username[:160]})))
            wait = until - time.time()
            if wait > 0:
                exc = Unauthorized(
                    "invalid username or password; the next attempt for this account from this "
                    f"address must wait {max(math.ceil(wait), 1)} s"
                )
            if record:
                _emit_denied(uow, username, remote, exc)
        if alert:
            count_alert(LOGIN_FAILURES_ALERT)
        return exc

    def _succeeded(self, principal: Principal, pair: str | None, remote: str | None,
                   record: bool) -> None:
        """Reset the pair's failures (when it had some) and record the login, in one write."""
        with self.database.write() as uow:
            if pair is not None:
                uow.access.clear_failures([pair])
            if record:
                uow.emit(records(Login(actor=Actor(principal.name, principal.kind, remote),
                                       outcome="success")))

    def _record_denied(self, username: str, remote: str | None, exc: RegistryError) -> None:
        """A refused login that changes nothing else: its event in a write of its own."""
        with self.database.write() as uow:
            _emit_denied(uow, username, remote, exc)

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
            with self.database.read() as uow:
                robot = uow.access.get_robot(username[len(ROBOT_PREFIX):])
            ok = verify_robot_secret(robot.secret_hash if robot else None, password)
            if not ok or robot is None:
                return None
            # Only the holder of the right secret learns why it no longer works.
            _check_robot_usable(robot, username)
            return Principal("robot", username)
        user = self._user(username) if USERNAME_RE.match(username) else None
        ok = verify_password(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled:
            return None
        if password_needs_rehash(user.password_hash):
            self._rehash(user.name, user.password_hash, password)
        return Principal("user", user.name, user_id=user.id, is_admin=user.is_admin)

    def _rehash(self, name: str, old_hash: str, password: str) -> None:
        """Store the password under today's hash parameters, unless it changed meanwhile."""
        with self.database.write() as uow:
            uow.access.replace_password_hash(name, old_hash, hash_password(password))

    def principal_from_claims(self, kind: str, subject: str) -> Principal:
        """Rebuild the caller behind a token (for refresh tokens and denial decisions)."""
        if kind == "anonymous":
            return ANONYMOUS
        if kind == "oidc":
            # Its grants were decided at the exchange and are in the token it holds, not here.
            return Principal("oidc", subject)
        if kind == "robot":
            with self.database.read() as uow:
                robot = uow.access.get_robot(subject[len(ROBOT_PREFIX):])
            if robot is None:
                raise Unauthorized(f"{subject} no longer exists")
            _check_robot_usable(robot, subject)
            return Principal("robot", subject)
        user = self._user(subject)
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
        with self.database.read() as uow:
            if uow.access.get_namespace(ns_name) is not None:
                self._remember_namespace(ns_name)
                return False
        if principal.kind == "user" and not principal.is_admin:
            principal = self.principal_from_claims("user", principal.name)  # from a token
        authorizer.require(principal, Action.CREATE_NAMESPACE, namespace(ns_name))
        with self.database.write() as uow:  # the namespace and its creator's role together
            if uow.access.create_namespace(ns_name, "private", principal.name):
                user = uow.access.get_user(principal.name)
                if user is not None and not principal.is_admin:
                    uow.access.set_member(ns_name, user.id, "admin")
        authorizer.forget()
        self._remember_namespace(ns_name)
        return True

    def _user(self, name: str) -> UserRow | None:
        with self.database.read() as uow:
            return uow.access.get_user(name)

    def _remember_namespace(self, name: str) -> None:
        if len(self._known_namespaces) >= KNOWN_NAMESPACES:
            self._known_namespaces.clear()
        self._known_namespaces.add(name)

    def forget_cached_logins(self) -> None:
        """Drop cached credential checks after an account change in this process."""
        self._basic_cache.clear()


def _emit_denied(uow: UnitOfWork, username: str, remote: str | None,
                 exc: RegistryError) -> None:
    uow.emit(records(Login(actor=Actor(username[:160], None, remote), outcome="denied",
                           detail={"code": exc.code, "reason": exc.message})))


SEALED_SECRET = b"sealed:"  # a stored shared secret that is a sealing envelope


def _sealed(sealer: Sealer, value: bytes) -> bytes:
    return SEALED_SECRET + sealer.seal(value).encode()
