"""The server's TLS context: built from the certificate files, reloaded in place on SIGHUP."""

from __future__ import annotations

import logging
import ssl

from .config import Settings

log = logging.getLogger("moorage.server")


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """An SSLContext serving `tls_cert_file`/`tls_key_file`, or None when TLS is off.

    Raises ValueError naming the file when the pair cannot be loaded (a startup error)."""
    if not settings.tls_cert_file or not settings.tls_key_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    _load(context, settings.tls_cert_file, settings.tls_key_file)
    return context


def reload(context: ssl.SSLContext, settings: Settings) -> bool:
    """Load the certificate files again into `context` (new handshakes use them; open
    connections keep theirs). A pair that does not load is logged and the old one kept."""
    assert settings.tls_cert_file and settings.tls_key_file
    try:
        # Tried on a scratch context first: a failed load_cert_chain may leave the live one
        # holding the new certificate with the old key.
        _load(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), settings.tls_cert_file,
              settings.tls_key_file)
        _load(context, settings.tls_cert_file, settings.tls_key_file)
    except ValueError as exc:
        log.error("TLS certificate not reloaded; keeping the old one", extra={"reason": str(exc)})
        return False
    log.info("TLS certificate reloaded", extra={"cert": settings.tls_cert_file})
    return True


def _load(context: ssl.SSLContext, cert: str, key: str) -> None:
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load TLS certificate {cert} with key {key}: {exc}") from None
