"""The garbage collector on the embedded registry: what it removes, what it keeps."""

from __future__ import annotations

import os

import pytest

from moorage.auth.identity import CLI
from moorage.bootstrap import Registry
from moorage.oci.digest import parse_digest
from moorage.oci.errors import BlobUnknown

from .content import push_blob, push_image


def _key(registry: Registry, repository: str, digest: str) -> str:
    return registry.blobs.locate(repository, parse_digest(digest)).storage_key


def test_gc_at_grace_zero_removes_an_unreferenced_blob_and_keeps_a_referenced_one(
    registry: Registry,
) -> None:
    _, layer = push_image(registry, "team/app", "v1")
    loose = push_blob(registry, "team/app", os.urandom(512))
    kept_key, loose_key = _key(registry, "team/app", layer), _key(registry, "team/app", loose)

    report = registry.gc.run(CLI, dry_run=False, grace_period=0)

    assert report.errors == [] and report.blobs == 1 and report.blob_bytes == 512
    with pytest.raises(BlobUnknown):
        registry.blobs.locate("team/app", parse_digest(loose))
    assert not registry.blob_store.blob_exists(loose_key)
    assert registry.blobs.locate("team/app", parse_digest(layer)).storage_key == kept_key
    assert registry.blob_store.blob_exists(kept_key)


def test_a_dry_run_counts_but_deletes_nothing(registry: Registry) -> None:
    loose = push_blob(registry, "team/app", os.urandom(300))
    key = _key(registry, "team/app", loose)

    report = registry.gc.run(CLI, dry_run=True, grace_period=0)

    assert report.dry_run and report.blobs == 1 and report.blob_bytes == 300
    assert registry.blobs.locate("team/app", parse_digest(loose)).storage_key == key
    assert registry.blob_store.blob_exists(key)
    runs = registry.gc.runs(CLI)
    assert runs[0]["dry_run"] and runs[0]["status"] == "done"
