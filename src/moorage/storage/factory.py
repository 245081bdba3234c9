"""Choosing the blob store the settings name."""

from __future__ import annotations

from ..config import Settings
from .base import BlobStore
from .filesystem import FilesystemBlobStore


def make_blob_store(settings: Settings) -> BlobStore:
    """The configured blob store: files under the data dir, or an S3-compatible bucket."""
    if settings.storage_url:
        from ..storage.s3 import S3BlobStore, S3Config

        return S3BlobStore(
            S3Config.from_url(
                settings.storage_url,
                endpoint=settings.s3_endpoint,
                region=settings.s3_region,
                access_key_id=settings.s3_access_key_id,
                secret_access_key=settings.s3_secret_access_key,
                part_size=settings.s3_part_size,
                spool_dir=settings.spool_dir,
            )
        )
    return FilesystemBlobStore(settings.data_dir, fsync=settings.fsync)
