"""Webhook signatures (Standard Webhooks) against an independent HMAC, and secrets sealed at rest
(auth/sealing.py): round trip, tampering, the stored column, the key's origin."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from support.webhooks import Received, verify

from moorage.auth.identity import CLI
from moorage.auth.sealing import KEY_FILE, NoSecretsKey, Sealer, SealingError, sealer_for
from moorage.config import Settings
from moorage.events.webhooks import headers, signature

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
BODY = b'{"specversion":"1.0","id":"42","type":"org.moorage.manifest.pushed"}'


def _independent(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def test_signature_matches_an_independent_hmac_for_whsec_and_plain_secrets() -> None:
    # whsec_: the key is the base64-decoded body, not the text
    assert signature(WHSEC, "42", 1700000000, BODY) == _independent(
        b"0123456789abcdef0123456789abcdef", "42", 1700000000, BODY)
    # anything else: the secret's bytes
    assert signature("plain secret", "42", 1700000000, BODY) == _independent(
        b"plain secret", "42", 1700000000, BODY)
    assert signature(WHSEC, "42", 1700000000, BODY) != signature(
        WHSEC.removeprefix("whsec_"), "42", 1700000000, BODY)


def test_signed_headers_verify_and_a_wrong_secret_fails() -> None:
    sent = headers(WHSEC, "42", BODY)
    request = Received({k.lower(): v for k, v in sent.items()}, BODY, 204)
    assert sent["Content-Type"] == "application/cloudevents+json"
    assert sent["webhook-id"] == "42"
    assert verify(WHSEC, request)
    assert not verify("whsec_" + base64.b64encode(b"x" * 32).decode(), request)
    tampered = Received(request.headers, BODY.replace(b"42", b"43"), 204)
    assert not verify(WHSEC, tampered)


def test_an_unsigned_webhook_sends_no_signature() -> None:
    assert "webhook-signature" not in headers(None, "1", BODY)


def test_sealing_round_trips_with_a_fresh_nonce_per_value() -> None:
    sealer = Sealer(os.urandom(32))
    one, two = sealer.seal(b"hunter2"), sealer.seal(b"hunter2")
    assert one.startswith("v1:") and two.startswith("v1:")
    assert one != two  # random nonce: equal secrets do not look equal at rest
    assert sealer.unseal(one) == sealer.unseal(two) == b"hunter2"
    assert "hunter2" not in one


def test_a_tampered_envelope_or_another_key_fails() -> None:
    sealer = Sealer(os.urandom(32))
    envelope = sealer.seal(b"the secret")
    raw = bytearray(base64.b64decode(envelope[3:]))
    raw[-1] ^= 1
    with pytest.raises(SealingError):
        sealer.unseal("v1:" + base64.b64encode(bytes(raw)).decode())
    with pytest.raises(SealingError):
        Sealer(os.urandom(32)).unseal(envelope)
    with pytest.raises(SealingError, match="format"):
        sealer.unseal("v2:" + envelope[3:])


def test_the_stored_secret_is_sealed_not_the_plaintext(registry) -> None:
    registry.webhooks.add(CLI, "team", "http://127.0.0.1:9/hook", "push", secret=WHSEC,
                          name="sealed")
    with registry.database.read() as uow:
        stored = uow.webhooks.get("sealed")["secret"]
    assert stored.startswith("v1:") and WHSEC not in stored
    assert WHSEC.removeprefix("whsec_") not in stored
    url, secret = registry.webhooks.target(_id(registry, "sealed"))
    assert (url, secret) == ("http://127.0.0.1:9/hook", WHSEC)
    # the embedded default keeps its key in the data dir, readable by the owner only
    key_file = registry.settings.data_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def _id(registry: Any, name: str) -> int:
    with registry.database.read() as uow:
        return int(uow.webhooks.get(name)["id"])


def test_the_key_file_is_generated_once(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path)
    envelope = sealer_for(settings).seal(b"x")
    first = (tmp_path / KEY_FILE).read_text()
    assert sealer_for(settings).unseal(envelope) == b"x"
    assert (tmp_path / KEY_FILE).read_text() == first


def test_the_secrets_key_setting_wins_over_the_key_file(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    settings = Settings.from_env({"MOORAGE_SECRETS_KEY": key}, data_dir=tmp_path)
    envelope = sealer_for(settings).seal(b"x")
    assert not (tmp_path / KEY_FILE).exists()
    assert Sealer(base64.b64decode(key)).unseal(envelope) == b"x"


def test_a_shared_database_without_a_secrets_key_refuses_to_seal(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path,
                                 database_url="postgresql://u@127.0.0.1:1/db")
    with pytest.raises(NoSecretsKey, match="MOORAGE_SECRETS_KEY"):
        sealer_for(settings)
    assert not (tmp_path / KEY_FILE).exists()
