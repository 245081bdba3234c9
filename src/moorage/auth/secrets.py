"""Passwords (argon2id) and robot secrets (random, stored as SHA-256), compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# Verified against when an account does not exist, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; spends the same effort when there is no account."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_robot_secret() -> str:
    """A random robot secret (256 bits), shown to the user once."""
    return secrets.token_urlsafe(32)


def hash_robot_secret(secret: str) -> str:
    """Robot secrets are high-entropy, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_robot_secret(secret_hash: str | None, secret: str) -> bool:
    """Constant-time comparison of a presented robot secret with the stored hash."""
    presented = hash_robot_secret(secret)
    return hmac.compare_digest(secret_hash or "0" * 64, presented) and secret_hash is not None
