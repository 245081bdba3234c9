"""S3-compatible BlobStore: store (the BlobStore), multipart (the upload writer), signer (SigV4)."""

from .multipart import MAX_PARTS, MIN_PART, Checkpoint, S3UploadWriter, min_part_for, part_size_for
from .signer import S3Error
from .store import S3BlobStore, S3Config

__all__ = [
    "MAX_PARTS",
    "MIN_PART",
    "Checkpoint",
    "S3BlobStore",
    "S3Config",
    "S3Error",
    "S3UploadWriter",
    "min_part_for",
    "part_size_for",
]
