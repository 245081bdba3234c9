"""The OCI Distribution error codes, raised as typed exceptions and rendered in one place."""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """An error the registry answers with a spec error code and HTTP status."""

    code = "UNSUPPORTED"
    status = 400
    default_message = "the operation is unsupported"

    def __init__(
        self,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.detail = detail
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        """The spec's JSON error body."""
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}


class BlobUnknown(RegistryError):
    code, status, default_message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class RangeNotSatisfiable(BlobUploadInvalid):
    """An out-of-order or overlapping chunk: 416, the upload stays usable."""

    status = 416
    default_message = "chunk is out of order or overlaps data already received"


class BlobUploadUnknown(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code, status, default_message = (
        "DIGEST_INVALID",
        400,
        "provided digest did not match uploaded content",
    )


class ManifestBlobUnknown(RegistryError):
    code, status, default_message = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to registry",
    )


class ManifestInvalid(RegistryError):
    code, status, default_message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestTooLarge(ManifestInvalid):
    status = 413
    default_message = "manifest is larger than the registry accepts"


class ManifestUnknown(RegistryError):
    code, status, default_message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(RegistryError):
    code, status, default_message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status, default_message = (
        "SIZE_INVALID",
        400,
        "provided length did not match content length",
    )


class Unauthorized(RegistryError):
    code, status, default_message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    code, status, default_message = "DENIED", 403, "requested access to the resource is denied"


class AccessDenied(Denied):
    """An authorization refusal: which action on which resource, and why (the message)."""

    def __init__(self, message: str, action: str, resource: str | None = None) -> None:
        super().__init__(message)
        self.action = action
        self.resource = resource


class Unsupported(RegistryError):
    code, status, default_message = "UNSUPPORTED", 405, "the operation is unsupported"


class TooManyRequests(RegistryError):
    code, status, default_message = "TOOMANYREQUESTS", 429, "too many requests"


class RangeInvalid(RegistryError):
    """A blob GET Range that cannot be satisfied (416 with `Content-Range: bytes */size`)."""

    code, status, default_message = "SIZE_INVALID", 416, "requested range not satisfiable"


class Unavailable(RegistryError):
    """The registry cannot serve the request now (shutting down); the client retries later."""

    code, status, default_message = "UNAVAILABLE", 503, "service unavailable"


class NameTaken(Exception):
    """A unique name (an upstream's, a cache's or a replication rule's) is in use; the query
    layer raises it and the service turns it into the error its caller sees."""


class RuleTaken(NameTaken):
    """A replication rule of that name exists already."""
