"""Choosing the blob store the settings name: drivers registered by URL scheme.

`storage_url` names the driver by its scheme (`s3://bucket/prefix`, `file:///srv/blobs`);
without one, blobs are files under the data dir, as before. A new backend registers a factory
under its scheme with `register_driver`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from .base import BlobStore

if TYPE_CHECKING:
    from ..config import Settings

Driver = Callable[[str, "Settings"], BlobStore]
_DRIVERS: dict[str, Driver] = {}


class UnknownStorage(ValueError):
    """The storage URL names no registered driver (or is not a URL)."""


def register_driver(scheme: str, factory: Driver) -> None:
    """Make `<scheme>://…` storage URLs build their blob store with `factory(url, settings)`."""
    _DRIVERS[scheme.lower()] = factory


def drivers() -> list[str]:
    """The registered schemes, sorted."""
    return sorted(_DRIVERS)


def scheme_of(url: str) -> str:
    """The driver scheme of a storage URL; UnknownStorage when none is registered for it."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme not in _DRIVERS:
        known = ", ".join(f"{s}://" for s in drivers())
        what = f"scheme {scheme!r}" if scheme else "no scheme"
        raise UnknownStorage(f"--storage {url!r} has {what}; known storage drivers: {known}")
    return scheme


def make_blob_store(settings: Settings) -> BlobStore:
    """The configured blob store: the driver of `storage_url`'s scheme, else files under the
    data dir."""
    if not settings.storage_url:
        return _filesystem_store(settings.data_dir, settings)
    return _DRIVERS[scheme_of(settings.storage_url)](settings.storage_url, settings)


def _filesystem_store(root: Path, settings: Settings) -> BlobStore:
    from .filesystem import FilesystemBlobStore

    return FilesystemBlobStore(root, fsync=settings.fsync)


def _file_driver(url: str, settings: Settings) -> BlobStore:
    """`file:///absolute/path`: files under that directory instead of the data dir."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise UnknownStorage(f"--storage {url!r}: a file URL is file:///absolute/path")
    return _filesystem_store(Path(unquote(parts.path)), settings)


def _s3_driver(url: str, settings: Settings) -> BlobStore:
    """`s3://bucket/prefix` on any S3-compatible service (endpoint and keys from settings)."""
    from .s3 import S3BlobStore, S3Config

    return S3BlobStore(
        S3Config.from_url(
            url,
            endpoint=settings.s3_endpoint,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            part_size=settings.s3_part_size,
            sse=settings.s3_sse or None,
            sse_kms_key_id=settings.s3_sse_kms_key_id,
            spool_dir=settings.spool_dir,
        )
    )


register_driver("file", _file_driver)
register_driver("s3", _s3_driver)
