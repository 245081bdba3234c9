"""ManifestService on the unit of work: a push stores, checks and emits in one transaction."""

from __future__ import annotations

import pytest

from moorage.bootstrap import Registry, open_registry, prepare
from moorage.config import Settings
from moorage.oci.digest import parse_digest
from moorage.oci.errors import ManifestBlobUnknown, ManifestUnknown

from .content import digest_of, events_after, image, push, pushed_image


def test_a_pushed_manifest_is_served_by_tag_and_by_digest(registry: Registry) -> None:
    content = pushed_image(registry, "team/app")
    pushed = push(registry, "team/app", "v1", content)
    assert str(pushed.digest) == digest_of(content)
    by_tag = registry.manifests.get("team/app", "v1", with_content=True)
    by_digest = registry.manifests.get("team/app", pushed.digest, with_content=True)
    assert by_tag.content == content and by_digest.content == content
    assert by_tag.digest == by_digest.digest == digest_of(content)
    assert registry.manifests.tags("team/app", None, 10) == ["v1"]


def test_a_push_naming_an_absent_blob_is_refused_and_writes_nothing(registry: Registry) -> None:
    present = pushed_image(registry, "team/app")  # the repository exists, with other blobs
    push(registry, "team/app", "v1", present)
    missing_layer = b"never uploaded" * 4
    content = image(b'{"architecture":"amd64","os":"linux"}', [missing_layer])
    last = registry.outbox.last_id()
    with pytest.raises(ManifestBlobUnknown) as refused:
        push(registry, "team/app", "v2", content)
    assert refused.value.code == "MANIFEST_BLOB_UNKNOWN"
    assert refused.value.detail["digest"] in {digest_of(missing_layer),
                                              digest_of(b'{"architecture":"amd64","os":"linux"}')}
    with pytest.raises(ManifestUnknown):
        registry.manifests.get("team/app", parse_digest(digest_of(content)), with_content=False)
    assert registry.manifests.tags("team/app", None, 10) == ["v1"]
    assert events_after(registry, last) == []  # a failed check leaves no event


def test_a_push_commits_its_events_with_it(registry: Registry) -> None:
    content = pushed_image(registry, "team/app")
    last = registry.outbox.last_id()
    push(registry, "team/app", "v1", content)
    events = [(e["type"], e["repository"], e["digest"], e["tag"])
              for e in events_after(registry, last)]
    digest = digest_of(content)
    assert events == [("ManifestPushed", "team/app", digest, "v1"),
                      ("TagMoved", "team/app", digest, "v1")]


def test_a_sparse_registry_accepts_a_manifest_whose_blobs_are_elsewhere(tmp_path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path / "sparse", auth=False, allow_sparse=True)
    prepare(settings)
    sparse = open_registry(settings)
    try:
        content = image(b'{"architecture":"amd64","os":"linux"}', [b"not here" * 8])
        pushed = push(sparse, "team/app", "v1", content)
        assert sparse.manifests.get("team/app", "v1", with_content=False).digest == str(
            pushed.digest)
    finally:
        sparse.close()
