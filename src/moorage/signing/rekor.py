"""Transparency-log (Rekor) evidence, offline: an entry's Merkle inclusion proof (RFC 6962
hashing) up to a checkpoint the log signed, its signed entry timestamp, and whether its body
records this signature, certificate and artifact. Pure functions, no I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .crypto import PublicKey

NOTE_DASH = "\u2014"  # a signed note's signature lines start with an em dash


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """A bundle entry's proof that its leaf is in the tree a checkpoint signs."""

    log_index: int  # the leaf's index in this tree (not the entry's global index)
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str  # the signed note text


class LogProblem(ValueError):
    """Evidence that does not hold; the message says which part and why."""


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(leaf: bytes, index: int, size: int, path: tuple[bytes, ...]) -> bytes:
    """The root an audit path leads to from `leaf` at `index` in a tree of `size` leaves."""
    if not 0 <= index < size:
        raise LogProblem(f"its inclusion proof puts leaf {index} in a tree of {size} leaves")
    # The path first climbs the levels where the leaf has a sibling subtree of full size
    # ("inner"), then the right border where the last, smaller subtrees join (RFC 9162 2.1.3.2).
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    if len(path) != inner + border:
        raise LogProblem(f"its inclusion proof has {len(path)} hashes where a leaf at {index} "
                         f"of {size} needs {inner + border}: the audit path was altered")
    seed = leaf
    for level, sibling in enumerate(path[:inner]):
        seed = node_hash(seed, sibling) if (index >> level) & 1 == 0 else node_hash(sibling, seed)
    for sibling in path[inner:]:
        seed = node_hash(sibling, seed)
    return seed


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    note: bytes  # the signed text
    signatures: tuple[tuple[str, bytes], ...]  # (name, key hint (4 bytes) + signature)


def parse_checkpoint(text: str) -> Checkpoint:
    """A signed note: `origin\\nsize\\nbase64 root\\n[...]\\n\\n— name base64(hint+sig)\\n`."""
    head, sep, tail = text.partition("\n\n")
    if not sep:
        raise LogProblem("its checkpoint is not a signed note (no blank line before the "
                         "signatures)")
    lines = head.split("\n")
    if len(lines) < 3:
        raise LogProblem("its checkpoint lacks the origin, tree size or root hash line")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise LogProblem("its checkpoint's tree size or root hash is unreadable") from exc
    signatures = []
    for line in tail.split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != NOTE_DASH:
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (ValueError, binascii.Error):
            continue
        if len(raw) > 4:
            signatures.append((parts[1], raw))
    return Checkpoint(lines[0], size, root, (head + "\n").encode(), tuple(signatures))


def check_inclusion(body: bytes, proof: InclusionProof, log_id: str, key: PublicKey) -> None:
    """Raise LogProblem unless `body` is a leaf of the tree whose checkpoint `key` signed."""
    from .crypto import verify_raw

    checkpoint = parse_checkpoint(proof.checkpoint)
    hint = bytes.fromhex(log_id)[:4]
    if not any(raw[:4] == hint and verify_raw(key, raw[4:], checkpoint.note)
               for _, raw in checkpoint.signatures):
        signers = ", ".join(sorted({name for name, _ in checkpoint.signatures})) or "nobody"
        raise LogProblem(f"its checkpoint (signed by {signers}) is not signed by the key of "
                         f"log {log_id[:16]}… of the trusted root")
    if (checkpoint.root_hash, checkpoint.size) != (proof.root_hash, proof.tree_size):
        raise LogProblem(f"its inclusion proof's root hash {proof.root_hash.hex()[:16]}… (tree "
                         f"size {proof.tree_size}) is not the signed checkpoint's "
                         f"{checkpoint.root_hash.hex()[:16]}… (size {checkpoint.size})")
    found = root_from_path(leaf_hash(body), proof.log_index, proof.tree_size, proof.hashes)
    if found != proof.root_hash:
        raise LogProblem("its inclusion proof's audit path does not lead from the entry to the "
                         "checkpoint's root hash: the path or the entry was altered")


def set_payload(body_b64: str, integrated_time: int, log_id: str, log_index: int) -> bytes:
    """What a log signs as the signed entry timestamp: canonical JSON of the entry."""
    return json.dumps({"body": body_b64, "integratedTime": integrated_time,
                       "logID": log_id, "logIndex": log_index},
                      sort_keys=True, separators=(",", ":")).encode()


def check_body(body: bytes, signature: bytes, certificate: bytes,
               artifact: tuple[str, str]) -> None:
    """Raise LogProblem unless a hashedrekord or dsse entry body records this signature, made
    with this certificate (DER), over the artifact `(algorithm, hex digest)`."""
    try:
        doc = json.loads(body)
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        if kind == "hashedrekord":
            sig = spec.get("signature") or {}
            pairs = [(sig.get("content"), (sig.get("publicKey") or {}).get("content"))]
            digest = (spec.get("data") or {}).get("hash") or {}
        elif kind == "dsse":
            pairs = [(s.get("signature"), s.get("verifier")) for s in spec.get("signatures") or []
                     if isinstance(s, dict)]
            digest = spec.get("payloadHash") or {}
        else:
            raise LogProblem(f"its log entry is of kind {kind!r}: only hashedrekord and dsse "
                             f"entries are read")
        logged = (str(digest.get("algorithm", "")).lower(), str(digest.get("value", "")).lower())
        records = [(_b64(s), _pem_der(c)) for s, c in pairs]
    except (ValueError, AttributeError, TypeError) as exc:
        if isinstance(exc, LogProblem):
            raise
        raise LogProblem("its log entry body is not a readable hashedrekord or dsse entry") \
            from exc
    if logged != artifact:
        raise LogProblem(f"its log entry records another artifact ({logged[0]}:"
                         f"{logged[1][:16]}…), not the signed {artifact[0]}:{artifact[1][:16]}…")
    if not any(s == signature for s, _ in records):
        raise LogProblem("its log entry records another signature than this one")
    if not any(s == signature and c == certificate for s, c in records):
        raise LogProblem("its log entry records this signature with another certificate")


def _b64(value: Any) -> bytes:
    return base64.b64decode(str(value), validate=True)


def _pem_der(value: Any) -> bytes | None:
    """The DER of a base64 PEM certificate (as log bodies carry it), None if it is not one."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        return x509.load_pem_x509_certificate(_b64(value)).public_bytes(Encoding.DER)
    except (ValueError, TypeError, binascii.Error):
        return None
