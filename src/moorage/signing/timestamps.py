"""RFC 3161 signed timestamps of a signature, offline: the token must be signed by a timestamp
authority of the trusted root (its chain verified at the token's own time) over the SHA-256 of
the signature bytes; its genTime is then a trusted signing time. Imports rfc3161-client only
when a bundle carries a timestamp."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True)
class Authority:
    """A certificate authority of a trusted root (a Fulcio CA, or a TSA: its signing
    certificate first), with its validity in Unix seconds."""

    certs: tuple[x509.Certificate, ...]
    start: float
    end: float | None


class TimestampProblem(ValueError):
    """A timestamp that does not establish a time; the message says why."""


def timestamp_time(token: bytes, signature: bytes,
                   authorities: tuple[Authority, ...]) -> float:
    """The genTime (Unix seconds) of a TimeStampResp that a trusted TSA issued over
    SHA-256(`signature`); else TimestampProblem."""
    import hashlib

    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    try:
        response = decode_timestamp_response(token)
        info = response.tst_info
        gen_time = info.gen_time.timestamp()
        imprint = info.message_imprint
    except ValueError as exc:
        raise TimestampProblem("its RFC 3161 timestamp is not a readable TimeStampResp") from exc
    if imprint.message != hashlib.sha256(signature).digest():
        raise TimestampProblem("its RFC 3161 timestamp is over other bytes than this signature "
                               "(the message imprint is not SHA-256 of the signature)")
    if not authorities:
        raise TimestampProblem("it carries an RFC 3161 timestamp but the trusted root names no "
                               "timestamp authority")
    for authority in authorities:
        if gen_time < authority.start or (authority.end is not None and gen_time > authority.end):
            continue
        builder = VerifierBuilder().tsa_certificate(authority.certs[0]) \
            .add_root_certificate(authority.certs[-1])
        for cert in authority.certs[1:-1]:
            builder = builder.add_intermediate_certificate(cert)
        try:
            builder.build().verify_message(response, signature)
            return gen_time
        except (VerificationError, ValueError):
            continue
    raise TimestampProblem("its RFC 3161 timestamp is not signed by a timestamp authority of "
                           "the trusted root valid at its time")
