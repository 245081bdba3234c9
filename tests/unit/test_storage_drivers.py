"""Storage drivers chosen by the storage URL's scheme (storage/factory.py): `file` and `s3`
built in, others registered with `register_driver`, an unknown scheme a startup error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from moorage.bootstrap import Registry, open_registry, prepare
from moorage.config import Settings
from moorage.storage import factory
from moorage.storage.base import BlobStore
from moorage.storage.filesystem import FilesystemBlobStore
from moorage.storage.s3 import S3BlobStore


def make_registry(data_dir: Path, **overrides: object) -> Registry:
    settings = Settings.from_env({}, data_dir=data_dir, auth=False, **overrides)
    prepare(settings)
    return open_registry(settings)


def _files(registry) -> FilesystemBlobStore:  # type: ignore[no-untyped-def]
    """The filesystem store under the chunk-aware one every registry serves through."""
    from moorage.chunks.reader import ChunkedBlobStore

    assert isinstance(registry.blob_store, ChunkedBlobStore)
    store = registry.blob_store.inner
    assert isinstance(store, FilesystemBlobStore)
    return store


def test_without_a_storage_url_blobs_are_files_in_the_data_dir(tmp_path: Path):
    registry = make_registry(tmp_path / "data")
    try:
        store = _files(registry)
        assert store.root == tmp_path / "data"
    finally:
        registry.close()


def test_a_file_url_puts_the_blobs_in_its_directory(tmp_path: Path):
    blobs = tmp_path / "elsewhere" / "blobs dir"
    registry = make_registry(tmp_path / "data", storage_url=blobs.as_uri())
    try:
        store = _files(registry)
        assert store.root == blobs
        handle = store.create_upload("u1")
        writer = store.open_upload(handle, 0)
        writer.write(b"hello")
        writer.close()
        key = store.commit_upload(handle, "sha256:" + "0" * 64)
        assert store.blob_exists(key)
        assert any(p.is_file() for p in (blobs / "blobs").rglob("*"))
        assert not (tmp_path / "data" / "blobs").exists()
    finally:
        registry.close()


def test_an_s3_url_builds_the_s3_driver():
    settings = Settings.from_env({}, storage_url="s3://bucket/some/prefix",
                                 s3_endpoint="http://127.0.0.1:1")
    store = factory.make_blob_store(settings)
    assert isinstance(store, S3BlobStore)
    assert (store.config.bucket, store.prefix) == ("bucket", "some/prefix")


def test_a_registered_driver_is_chosen_by_its_scheme(tmp_path: Path, monkeypatch):
    seen: list[str] = []

    def driver(url: str, settings: Settings) -> BlobStore:
        seen.append(url)
        return FilesystemBlobStore(tmp_path / "custom")

    monkeypatch.setitem(factory._DRIVERS, "test-mem", driver)
    settings = Settings.from_env({"MOORAGE_STORAGE_URL": "test-mem://anything"})
    store = factory.make_blob_store(settings)
    assert seen == ["test-mem://anything"]
    assert isinstance(store, FilesystemBlobStore) and store.root == tmp_path / "custom"


@pytest.mark.parametrize("url", ["gs://bucket/prefix", "bucket/prefix"])
def test_an_unknown_scheme_is_an_error_naming_the_known_drivers(url: str):
    with pytest.raises(ValueError, match="known storage drivers: file://, s3://"):
        Settings.from_env({"MOORAGE_STORAGE_URL": url})


def test_serve_refuses_to_start_on_an_unknown_storage_scheme(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "moorage", "serve", "--data-dir", str(tmp_path),
         "--storage", "gs://bucket", "--listen", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "known storage drivers: file://, s3://" in out.stderr
