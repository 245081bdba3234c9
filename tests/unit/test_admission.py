"""The admission chain: immutable tags, the namespace quota, and the pull-side seam."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.bootstrap import Registry
from moorage.oci.digest import parse_digest
from moorage.oci.errors import Denied, ManifestUnknown
from moorage.policy.admission import AdmissionChain, PullRequest
from moorage.registry.manifests import ManifestService

from .content import digest_of, events_after, push, push_blob, pushed_image


def test_moving_an_immutable_tag_is_denied_and_writes_nothing(registry: Registry) -> None:
    with registry.database.write() as uow:
        uow.policies.add_immutability_rule("team", "v*", "", None)
    first = pushed_image(registry, "team/app")
    push(registry, "team/app", "v1", first)
    second = pushed_image(registry, "team/app")
    last = registry.outbox.last_id()
    with pytest.raises(Denied) as denied:
        push(registry, "team/app", "v1", second)
    assert denied.value.code == "DENIED"
    assert "tag 'v1' is immutable (rule 'v*' of namespace 'team')" in denied.value.message
    assert registry.manifests.get("team/app", "v1", with_content=False).digest == digest_of(first)
    with pytest.raises(ManifestUnknown):  # no row for the refused manifest
        registry.manifests.get("team/app", parse_digest(digest_of(second)), with_content=False)
    assert events_after(registry, last) == []
    # an excepted or uncovered tag still moves
    push(registry, "team/app", "latest", second)
    assert registry.manifests.get("team/app", "latest", with_content=False).digest == digest_of(
        second)


def test_a_push_over_the_namespace_quota_is_denied_with_the_figures(registry: Registry) -> None:
    content = pushed_image(registry, "team/app", layer_bytes=4096)
    with registry.database.write() as uow:
        uow.policies.set_quota("team", 1000, None)
    last = registry.outbox.last_id()
    with pytest.raises(Denied) as denied:
        push(registry, "team/app", "v1", content)
    message = denied.value.message
    assert message.startswith("quota exceeded for namespace 'team': using 0 B (0 bytes) of "
                              "1000 B (1000 bytes); this push needs ")
    assert denied.value.detail["limit"] == 1000 and denied.value.detail["requested"] > 4096
    assert events_after(registry, last) == []
    with registry.database.write() as uow:
        uow.policies.set_quota("team", 10**9, None)
    push(registry, "team/app", "v1", content)  # under a larger quota, the same push lands


def test_an_upload_over_the_quota_is_denied_before_its_bytes_are_stored(
        registry: Registry) -> None:
    registry.policies.set_quota(_Admin(), "team", 100)
    with pytest.raises(Denied, match="quota exceeded for namespace 'team'"):
        push_blob(registry, "team/app", b"x" * 500)
    with registry.database.read() as uow:
        assert uow.blobs.find(digest_of(b"x" * 500)) is None
    registry.policies.set_quota(_Admin(), "team", None)  # the cached figures are dropped
    push_blob(registry, "team/app", b"x" * 500)


class _Admin:
    name, kind, address, is_admin = "admin", "user", None, True


class _RefuseUnsigned:
    """A pull check the way a signature policy would plug in."""

    def __init__(self) -> None:
        self.seen: list[PullRequest] = []

    def check(self, uow: Any, pull: PullRequest) -> None:
        self.seen.append(pull)
        raise Denied(f"{pull.repository}@{pull.digest} has no trusted signature; sign it "
                     "with cosign and push the signature")


def test_a_pull_check_refusing_stops_the_manifest_being_served(registry: Registry) -> None:
    content = pushed_image(registry, "team/app")
    push(registry, "team/app", "v1", content)
    refuse = _RefuseUnsigned()
    guarded = ManifestService(registry.database, registry.settings.max_manifest_bytes,
                              registry.deletion, registry.pulls, AdmissionChain(pull=[refuse]))
    with pytest.raises(Denied, match="has no trusted signature"):
        guarded.get("team/app", "v1", with_content=True)
    assert [(p.reference, p.digest, p.namespace) for p in refuse.seen] == [
        ("v1", digest_of(content), "team")]
    # the registry's own chain has no pull checks: the same manifest is served
    assert registry.manifests.get("team/app", "v1", with_content=True).content == content
