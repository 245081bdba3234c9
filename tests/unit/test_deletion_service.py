"""Soft delete on the embedded registry: restorable within the window, gone after the purge."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from moorage.auth.identity import CLI
from moorage.bootstrap import Registry, open_registry, prepare
from moorage.config import Settings
from moorage.oci.errors import ManifestUnknown

from .content import push_image


def test_a_soft_deleted_tag_is_restored_within_the_window(registry: Registry) -> None:
    digest, _ = push_image(registry, "team/app", "v1")

    assert registry.deletion.soft_delete_tag("team/app", "v1", "alice")
    assert registry.manifests.tags("team/app", None, 10) == []
    listed = registry.deletion.deleted_tags(CLI, "team/app")
    assert [(r["tag"], r["digest"], r["deleted_by"]) for r in listed] == [
        ("v1", digest, "alice")]

    assert registry.deletion.restore_tag(CLI, "team/app", "v1") == digest
    assert registry.manifests.tags("team/app", None, 10) == ["v1"]
    assert registry.deletion.deleted_tags(CLI, "team/app") == []


def test_deleting_a_missing_tag_reports_nothing_deleted(registry: Registry) -> None:
    push_image(registry, "team/app", "v1")
    assert not registry.deletion.soft_delete_tag("team/app", "nope")
    assert not registry.deletion.soft_delete_tag("team/none", "v1")


def test_restore_after_the_purge_is_manifest_unknown(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path / "r", auth=False, tag_restore_window=1.0)
    prepare(settings)
    registry = open_registry(settings)
    try:
        push_image(registry, "team/app", "v1")
        assert registry.deletion.soft_delete_tag("team/app", "v1")
        time.sleep(1.2)  # the restore window passes

        report = registry.gc.run(CLI, dry_run=False, grace_period=None)

        assert report.errors == [] and report.deleted_tags_expired == 1
        with registry.database.read() as uow:
            assert uow.deletion.count_expired(time.time() + 3600) == 0  # no row left at all
        with pytest.raises(ManifestUnknown) as raised:
            registry.deletion.restore_tag(CLI, "team/app", "v1")
        assert raised.value.code == "MANIFEST_UNKNOWN" and raised.value.status == 404
        assert "no restorable tag 'v1'" in str(raised.value)
    finally:
        registry.close()
