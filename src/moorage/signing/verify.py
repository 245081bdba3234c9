"""Verifying a manifest's signatures and attestations against its namespace's trust entries.

`Verifier.verify(repository, digest)` is the service API a pull check calls on every GET: the
namespace's entries and each result are cached in memory for a few seconds (other processes
see a trust change within that time; this process at once), so a pull costs no query while
cached and one indexed query for candidates when a result has expired.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..auth.scopes import namespace_of
from .discovery import ATTESTATION, Envelope, SignatureFinder

if TYPE_CHECKING:
    from cryptography import x509

    from ..auth.authorizer import Authorizer
    from ..metadata.queries.trust import TrustRow
    from ..metadata.uow import Database
    from .crypto import PublicKey
    from .keyless import TrustedRoot

CACHE_SECONDS = 10.0
CACHE_ENTRIES = 4096

# Outcome codes, each with a sentence built where it is decided.
VERIFIED = "verified"
NO_TRUSTED_KEY = "no-trusted-key"
BAD_SIGNATURE = "bad-signature"
WRONG_DIGEST = "wrong-digest"
UNTRUSTED_CHAIN = "untrusted-chain"
EXPIRED = "expired"
MALFORMED = "malformed"
UNSUPPORTED = "unsupported"
UNTRUSTED_IDENTITY = "untrusted-identity"
UNTRUSTED_LOG = "untrusted-log"  # keyless: no log entry or timestamp vouches for a signing time


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One signature or attestation and what came of checking it."""

    kind: str  # cosign-tag | sigstore-bundle | notation | attestation
    manifest: str  # the signature manifest's digest
    found_as: str
    outcome: str  # verified | no-trusted-key | bad-signature | wrong-digest | …
    message: str  # one sentence a user can act on
    trust_entry: str | None = None  # the entry that verified it
    predicate_type: str | None = None
    statement: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def verified(self) -> bool:
        return self.outcome == VERIFIED

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the in-toto statement left out)."""
        out = asdict(self)
        out.pop("statement")
        out["verified"] = self.verified
        return out


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """What was found for one manifest and which trust entries verified it."""

    repository: str
    digest: str
    namespace: str
    signatures: tuple[SignatureCheck, ...]
    attestations: tuple[SignatureCheck, ...]
    trusted: tuple[str, ...]  # the namespace's entry names when checked
    checked_at: float

    @property
    def verified(self) -> bool:
        """At least one signature verified against a trusted entry."""
        return any(s.verified for s in self.signatures)

    def verified_by(self) -> list[str]:
        """The names of the trust entries that verified a signature."""
        return sorted({s.trust_entry for s in self.signatures if s.verified and s.trust_entry})

    def verified_attestations(self, predicate_prefix: str = "") -> list[SignatureCheck]:
        """Verified attestations whose predicate type starts with `predicate_prefix`."""
        return [a for a in self.attestations if a.verified
                and (a.predicate_type or "").startswith(predicate_prefix)]

    def provenance(self) -> list[dict[str, Any]]:
        """Each verified SLSA provenance, read: builder, source, commit, started, finished,
        with the trust entry that verified it (what `--require-provenance --builder` checks)."""
        from .provenance import SLSA, provenance_of

        return [{**provenance_of(a.statement), "trust_entry": a.trust_entry,
                 "attestation": a.manifest}
                for a in self.verified_attestations(SLSA) if a.statement is not None]

    def summary(self) -> str:
        """One sentence: verified by whom, or why not, and what to do."""
        where = f"{self.repository}@{self.digest}"
        if self.verified:
            return f"{where} is signed by {', '.join(self.verified_by())}"
        if not self.signatures:
            return (f"{where} has no signatures: sign it with cosign or notation and push the "
                    f"signature to {self.repository}")
        if not self.trusted:
            return (f"{where} has {len(self.signatures)} signature(s) but namespace "
                    f"{self.namespace} trusts no key, root or identity: ask an admin to run "
                    f"`moorage trust add {self.namespace} --name NAME --key KEY.pub`")
        return f"{where} has no signature a trusted entry verifies: " + \
            "; ".join(s.message for s in self.signatures)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"repository": self.repository, "digest": self.digest,
                "namespace": self.namespace, "verified": self.verified,
                "verified_by": self.verified_by(), "summary": self.summary(),
                "trusted": list(self.trusted), "checked_at": self.checked_at,
                "signatures": [s.to_dict() for s in self.signatures],
                "attestations": [a.to_dict() for a in self.attestations]}


@dataclass(frozen=True)
class _Trust:
    """A namespace's entries, loaded: keys and roots, and a version naming this exact set."""

    version: str
    keys: tuple[tuple[TrustRow, PublicKey], ...]
    roots: tuple[tuple[TrustRow, tuple[x509.Certificate, ...]], ...]
    keyless: tuple[tuple[TrustRow, TrustedRoot], ...]
    names: tuple[str, ...]


class Verifier:
    """Verifies manifests against trust entries; cheap to call again (see the module doc)."""

    def __init__(self, database: Database, finder: SignatureFinder,
                 ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.database = database
        self.finder = finder
        self.ttl = ttl
        self.clock = clock
        self._trust: dict[str, tuple[float, _Trust]] = {}
        self._results: OrderedDict[tuple[str, str, str], tuple[float, VerificationResult]] = \
            OrderedDict()
        self._lock = threading.Lock()  # request threads share the caches

    def verify(self, repository: str, digest: str) -> VerificationResult:
        """The signatures and attestations of `digest` in `repository`, each checked against
        the trust entries of the repository's namespace (no access check: callers decide)."""
        namespace = namespace_of(repository)
        now = self.clock()
        trust = self._trust_of(namespace, now)
        key = (trust.version, repository, digest)
        cached = self._results.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        result = self._check(repository, digest, namespace, trust)
        with self._lock:
            self._results[key] = (now + self.ttl, result)
            self._results.move_to_end(key)
            while len(self._results) > CACHE_ENTRIES:
                self._results.popitem(last=False)
        return result

    def forget(self, namespace: str | None = None) -> None:
        """Drop cached trust and results (of one namespace, or all), after a trust change."""
        with self._lock:
            if namespace is None:
                self._trust.clear()
                self._results.clear()
                return
            self._trust.pop(namespace, None)
            for key in [k for k, (_, r) in self._results.items() if r.namespace == namespace]:
                self._results.pop(key, None)

    # -- internals ------------------------------------------------------------------------------

    def _trust_of(self, namespace: str, now: float) -> _Trust:
        cached = self._trust.get(namespace)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.database.read() as uow:
            rows = uow.trust.list(namespace)
        trust = _load(rows)
        self._trust[namespace] = (now + self.ttl, trust)
        return trust

    def _check(self, repository: str, digest: str, namespace: str,
               trust: _Trust) -> VerificationResult:
        checks = [_check_one(e, digest, namespace, trust)
                  for e in self.finder.find(repository, digest)]
        return VerificationResult(
            repository, digest, namespace,
            tuple(c for c in checks if c.kind != ATTESTATION),
            tuple(c for c in checks if c.kind == ATTESTATION),
            trust.names, time.time())


def _load(rows: list[TrustRow]) -> _Trust:
    """Parse a namespace's entries once (an entry that no longer parses is skipped)."""
    from .crypto import BadMaterial, load_certificates, load_public_key
    from .keyless import load_trusted_root

    keys, roots, keyless = [], [], []
    for row in rows:
        try:
            if row.kind == "key":
                keys.append((row, load_public_key(row.material.encode()).key))
            elif row.kind == "keyless":
                keyless.append((row, load_trusted_root(row.material.encode())))
            else:
                roots.append((row, tuple(load_certificates(row.material.encode()))))
        except BadMaterial:
            continue
    version = hashlib.sha256("|".join(f"{r.id}:{r.name}:{r.fingerprint}"
                                      for r in rows).encode()).hexdigest()[:16]
    return _Trust(version, tuple(keys), tuple(roots), tuple(keyless), tuple(r.name for r in rows))


def _check_one(env: Envelope, digest: str, namespace: str, trust: _Trust) -> SignatureCheck:
    def done(outcome: str, message: str, entry: str | None = None) -> SignatureCheck:
        return SignatureCheck(env.kind, env.manifest, env.found_as, outcome, message, entry,
                              env.predicate_type, env.statement if outcome == VERIFIED else None)

    what = f"the {env.kind} signature {env.manifest[:19]}…"
    if env.kind == ATTESTATION:
        what = f"the attestation {env.manifest[:19]}… ({env.predicate_type or 'no predicate'})"
    if env.problem is not None:
        code, sentence = env.problem
        return done(UNSUPPORTED if code == "unsupported" else MALFORMED,
                    f"{what} cannot be checked: {sentence}")
    if digest not in env.subjects:
        named = ", ".join(env.subjects) or "nothing"
        return done(WRONG_DIGEST, f"{what} signs {named}, not {digest}: it belongs to another "
                                  f"image; sign this one")
    if env.scheme == "jws":
        return _check_notation(env, namespace, trust, what, done)
    if env.certificate is not None:
        return _check_keyless(env, namespace, trust, what, done)
    if not trust.keys:
        return done(NO_TRUSTED_KEY, f"{what} was made with a key, but namespace {namespace} "
                                    f"trusts no public key: ask an admin to `moorage trust add "
                                    f"{namespace} --name NAME --key KEY.pub`")
    for row, key in trust.keys:
        if _verifies(env, key):
            return done(VERIFIED, f"{what} is verified by trust entry {row.name!r}", row.name)
    hinted = _hinted(env.hint, trust)
    if hinted is not None:
        return done(BAD_SIGNATURE, f"{what} names trusted key {hinted!r} but does not verify "
                                   f"with it: the signed content was changed after signing; "
                                   f"sign again")
    tried = ", ".join(repr(r.name) for r, _ in trust.keys)
    return done(NO_TRUSTED_KEY, f"{what} does not verify with any key trusted for namespace "
                                f"{namespace} ({tried}): it was made with another key, or its "
                                f"payload was changed after signing; sign with a trusted key or "
                                f"ask an admin to add yours")


def _check_keyless(env: Envelope, namespace: str, trust: _Trust, what: str,
                   done: Callable[..., SignatureCheck]) -> SignatureCheck:
    from .keyless import check_keyless, leaf_public_key

    if not trust.keyless:
        return done(NO_TRUSTED_KEY, f"{what} is keyless (a Fulcio certificate), but namespace "
                                    f"{namespace} trusts no keyless identity: ask an admin to "
                                    f"`moorage trust add {namespace} --name NAME --identity "
                                    f"EMAIL|URI --issuer URL --trusted-root trusted_root.json`")
    assert env.certificate is not None
    problems = []
    for row, root in trust.keyless:
        problem = check_keyless(env, root, row.identity or "", row.issuer or "")
        if problem is None:
            key = leaf_public_key(env.certificate)
            if key is None or not _verifies(env, key):
                return done(BAD_SIGNATURE, f"{what} has a certificate trusted by {row.name!r} "
                                           f"but does not verify with it: the content was "
                                           f"changed after signing; sign again")
            return done(VERIFIED, f"{what} is verified by trust entry {row.name!r} "
                                  f"({row.identity})", row.name)
        problems.append((row.name, problem))
    name, (code, sentence) = problems[0]
    outcome = {"expired": EXPIRED, "malformed": MALFORMED, "untrusted-log": UNTRUSTED_LOG,
               "untrusted-identity": UNTRUSTED_IDENTITY}.get(code, UNTRUSTED_CHAIN)
    return done(outcome, f"{what} is not trusted by {name!r}: {sentence}")


def _verifies(env: Envelope, key: PublicKey) -> bool:
    from .crypto import verify_prehashed, verify_raw

    if env.scheme == "prehashed":
        return verify_prehashed(key, env.signature, env.data, env.algorithm)
    return verify_raw(key, env.signature, env.data)


def _hinted(hint: str | None, trust: _Trust) -> str | None:
    """The trusted key entry a signer's hint names (by name, fingerprint hex or base64)."""
    if not hint:
        return None
    for row, _ in trust.keys:
        raw = bytes.fromhex(row.fingerprint)
        if hint in (row.name, row.fingerprint, base64.b64encode(raw).decode(),
                    base64.urlsafe_b64encode(raw).decode().rstrip("=")):
            return row.name
    return None


def _check_notation(env: Envelope, namespace: str, trust: _Trust, what: str,
                    done: Callable[..., SignatureCheck]) -> SignatureCheck:
    from cryptography import x509

    from .crypto import check_chain, leaf_key, verify_jws

    if not trust.roots:
        return done(UNTRUSTED_CHAIN, f"{what} carries an x509 chain, but namespace {namespace} "
                                     f"trusts no root certificate: ask an admin to `moorage "
                                     f"trust add {namespace} --name NAME --certificate-chain "
                                     f"ROOT.pem`")
    if env.expiry is not None and env.expiry < time.time():
        return done(EXPIRED, f"{what} expired at its own expiry time: sign again")
    try:
        chain = [x509.load_der_x509_certificate(der) for der in env.chain]
    except ValueError:
        return done(MALFORMED, f"{what} cannot be checked: an x5c certificate is not DER")
    problem = None
    for row, roots in trust.roots:
        problem = check_chain(chain, list(roots))
        if problem is None:
            key = leaf_key(chain)
            if key is None or not verify_jws(key, env.algorithm, env.signature, env.data):
                return done(BAD_SIGNATURE, f"{what} chains to trusted root {row.name!r} but its "
                                           f"signature does not verify with the signing "
                                           f"certificate: the content was changed after "
                                           f"signing; sign again")
            return done(VERIFIED, f"{what} is verified by trust entry {row.name!r} "
                                  f"({chain[0].subject.rfc4514_string()})", row.name)
        if problem.code != UNTRUSTED_CHAIN:
            break
    assert problem is not None
    code = {"expired": EXPIRED, "malformed": MALFORMED}.get(problem.code, UNTRUSTED_CHAIN)
    return done(code, f"{what}: {problem.message}")


class SignatureService:
    """What the CLI and the API ask: verify an image by reference, read its provenance; the
    caller needs pull permission on the repository."""

    def __init__(self, database: Database, verifier: Verifier, authorizer: Authorizer) -> None:
        self.database = database
        self.verifier = verifier
        self.authorizer = authorizer

    def verify(self, actor: Any, ref: str) -> VerificationResult:
        """Verify `REPO:TAG` or `REPO@DIGEST`; MANIFEST_UNKNOWN when it does not exist."""
        repository, digest = self._resolve(actor, ref)
        return self.verifier.verify(repository, digest)

    def provenance(self, actor: Any, ref: str) -> tuple[VerificationResult, list[dict[str, Any]]]:
        """The image's verification and its verified SLSA provenance, read."""
        result = self.verify(actor, ref)
        return result, result.provenance()

    def _resolve(self, actor: Any, ref: str) -> tuple[str, str]:
        from ..auth.authorizer import Action, repository
        from ..oci.errors import ManifestUnknown
        from ..oci.reference import validate_name
        from ..scan.service import split_reference

        name, digest, tag = split_reference(ref)
        validate_name(name)
        self.authorizer.require(actor, Action.PULL, repository(name), "verify its signatures")
        with self.database.read() as uow:
            row = uow.manifests.get(name, digest, tag, False)
        if row is None:
            raise ManifestUnknown(f"no manifest {ref}", detail={"reference": ref})
        return name, row.digest
