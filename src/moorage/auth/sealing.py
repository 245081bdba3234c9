"""Secrets encrypted at rest (webhook secrets, upstream credentials): AES-256-GCM under one
key-encryption key, a random 96-bit nonce per value, in a versioned envelope `v1:<base64>`.

The key comes from the `secrets_key` setting (MOORAGE_SECRETS_KEY, base64 of 32 bytes). An
embedded registry without one generates it once into `<data_dir>/secrets.key` (mode 0600); a
shared database has no data dir every node agrees on, so there the setting is required.

Rotation (`moorage secrets rotate`) re-seals every value under a new key. Meanwhile older keys
stay readable: `secrets_key_previous` (comma-separated) and, for the key file, a
`secrets.key.previous` beside it. AES-GCM's tag tells the keys apart, so the envelope needs no
key id and stays `v1`.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

from ..oci.errors import RegistryError

VERSION = "v1"
KEY_FILE = "secrets.key"
PREVIOUS_KEY_FILE = "secrets.key.previous"
_NONCE = 12
_AAD = b"moorage-sealed-v1"


class SealingError(RegistryError):
    """A sealed value cannot be opened (wrong key, tampered or malformed envelope)."""

    code, status, default_message = "UNSUPPORTED", 500, "a stored secret cannot be opened"


class NoSecretsKey(RegistryError):
    """There is no key to seal with (a shared database without MOORAGE_SECRETS_KEY)."""

    code, status, default_message = "UNSUPPORTED", 400, "no secrets key is configured"


class Sealer:
    """seal(bytes) → envelope text under `key`; unseal(envelope) → bytes, opened with `key` or
    any of `readable` (SealingError when none opens it, or it was tampered with)."""

    def __init__(self, key: bytes, readable: tuple[bytes, ...] = ()) -> None:
        if len(key) != 32 or any(len(k) != 32 for k in readable):
            raise ValueError("the secrets key must be 32 bytes (base64 of 32 bytes)")
        self._key = key
        self._readable = tuple(k for k in readable if k != key)

    @property
    def key(self) -> bytes:
        """The key new values are sealed with."""
        return self._key

    def _aead(self, key: bytes | None = None) -> Any:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(key or self._key)

    def seal(self, plaintext: bytes) -> str:
        """Encrypt `plaintext` under a fresh nonce: `v1:<base64(nonce || ciphertext+tag)>`."""
        nonce = os.urandom(_NONCE)
        sealed = self._aead().encrypt(nonce, plaintext, _AAD)
        return f"{VERSION}:" + base64.b64encode(nonce + sealed).decode("ascii")

    def unseal(self, envelope: str) -> bytes:
        """The plaintext of an envelope made by `seal` with this key."""
        from cryptography.exceptions import InvalidTag

        version, _, body = envelope.partition(":")
        if version != VERSION or not body:
            raise SealingError(f"unknown sealed-secret format {version!r}")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise SealingError("a sealed secret is not valid base64") from None
        if len(raw) < _NONCE + 16:
            raise SealingError("a sealed secret is too short")
        for key in (self._key, *self._readable):
            try:
                return bytes(self._aead(key).decrypt(raw[:_NONCE], raw[_NONCE:], _AAD))
            except InvalidTag:
                continue
        raise SealingError("a sealed secret does not open with this key (wrong "
                               "MOORAGE_SECRETS_KEY, or the value was changed)") from None


def parse_key(value: str) -> bytes:
    """The 32 key bytes of a `secrets_key` setting (ValueError naming the setting)."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("MOORAGE_SECRETS_KEY must be base64 (e.g. `openssl rand -base64 32`)"
                         ) from None
    if len(key) != 32:
        raise ValueError(f"MOORAGE_SECRETS_KEY must decode to 32 bytes, not {len(key)}")
    return key


def _key_file(path: Path) -> bytes:
    """The key in `path`, generated there first (0600, exclusive create) when absent."""
    try:
        return parse_key(path.read_text())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole aside, then linked in: workers starting together must never read a key
    # file that exists but is still empty (an exclusive create shows it before the write).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(os.urandom(32)).decode("ascii") + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process won the race: use its key
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return parse_key(path.read_text())


def previous_keys(settings: Any) -> tuple[bytes, ...]:
    """Keys still accepted for reading: `secrets_key_previous`, and the key file's
    predecessor while a rotation runs (embedded registries)."""
    keys: list[bytes] = []
    try:
        keys += [parse_key(part) for part in (settings.secrets_key_previous or "").split(",")
                 if part.strip()]
    except ValueError as exc:
        raise NoSecretsKey(f"secrets_key_previous: {exc}") from None
    if not settings.secrets_key and not settings.is_scaled_out:
        try:
            keys.append(parse_key((Path(settings.data_dir) / PREVIOUS_KEY_FILE).read_text()))
        except (FileNotFoundError, ValueError):
            pass
    return tuple(keys)


def sealer_for(settings: Any) -> Sealer:
    """The sealer of these settings (NoSecretsKey on a shared database without a key)."""
    readable = previous_keys(settings)
    if settings.secrets_key:
        try:
            return Sealer(parse_key(settings.secrets_key), readable)
        except ValueError as exc:
            raise NoSecretsKey(str(exc)) from None
    if settings.is_scaled_out:
        raise NoSecretsKey("a shared database needs MOORAGE_SECRETS_KEY (base64 of 32 bytes, "
                           "the same on every node) to store secrets")
    return Sealer(_key_file(Path(settings.data_dir) / KEY_FILE), readable)


def write_key_file(path: Path, key: bytes) -> None:
    """Put `key` in `path` (0600) atomically: a reader sees the old key or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(key).decode("ascii") + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
