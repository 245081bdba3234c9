"""UI session cookies and CSRF tokens (ui/sessions.py) and the tag table's order (ui/views.py)."""

from __future__ import annotations

from moorage.ui.sessions import SessionCodec
from moorage.ui.views import pull_commands, referrer_kind, semver_key

KEY = b"k" * 32


def test_a_session_round_trips_until_it_expires() -> None:
    codec = SessionCodec(KEY, 60)
    value = codec.issue("user", "alice", now=1000)
    session = codec.verify(value, now=1059)
    assert session is not None and (session.kind, session.name) == ("user", "alice")
    assert codec.verify(value, now=1061) is None


def test_a_tampered_or_foreign_session_is_refused() -> None:
    codec = SessionCodec(KEY, 60)
    value = codec.issue("user", "alice", now=1000)
    parts = value.split(".")
    parts[1] = "admin"
    assert codec.verify(".".join(parts), now=1001) is None
    assert SessionCodec(b"x" * 32, 60).verify(value, now=1001) is None
    assert codec.verify("garbage", now=1001) is None


def test_a_csrf_token_binds_the_visitor_and_the_principal() -> None:
    codec = SessionCodec(KEY, 60)
    token = codec.csrf_token("nonce-1", "alice")
    assert codec.csrf_ok("nonce-1", "alice", token)
    assert not codec.csrf_ok("nonce-2", "alice", token)
    assert not codec.csrf_ok("nonce-1", "bob", token)
    assert not codec.csrf_ok("nonce-1", "alice", None)


def test_semantic_versions_sort_newest_first_then_other_tags() -> None:
    tags = ["latest", "1.2.0", "1.10.0", "v2.0", "1.10.0-rc1", "main"]
    assert sorted(tags, key=semver_key) == ["v2.0", "1.10.0", "1.10.0-rc1", "1.2.0", "latest",
                                            "main"]


def test_referrers_are_classified_by_their_types() -> None:
    assert referrer_kind({"artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}) \
        == "signature"
    assert referrer_kind({"artifactType": "application/vnd.cyclonedx+json"}) == "sbom"
    assert referrer_kind({"artifactType": "application/vnd.in-toto+json"}) == "attestation"
    assert referrer_kind({"artifactType": "application/x-other"}) == "artifact"


def test_pull_commands_use_the_tag_or_else_the_digest() -> None:
    assert pull_commands("h:5000", "a/b", "v1", "sha256:x")["podman"] == "podman pull h:5000/a/b:v1"
    assert pull_commands("h:5000", "a/b", None, "sha256:x")["oras"] == "oras pull h:5000/a/b@sha256:x"
