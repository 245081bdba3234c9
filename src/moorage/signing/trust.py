"""Trust entries per namespace: the public keys and x509 roots signatures are verified with.

Adding, listing and removing entries is a namespace administrator's (or a server admin's) act,
decided by the one Authorizer; each change is a PolicyChanged event in its own transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..oci.errors import NameInvalid, RegistryError
from ..registry.access import (
    Conflict,
    NotFound,
    policy_changed,
    require_namespace_admin,
    valid_namespace,
)
from .crypto import BadMaterial, cert_fingerprint, load_certificates, load_public_key, roots_pem

if TYPE_CHECKING:
    from ..auth.authorizer import Authorizer
    from ..metadata.queries.trust import TrustRow
    from ..metadata.uow import Database

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
KEY, X509, KEYLESS = "key", "x509", "keyless"


def entry_dict(row: TrustRow) -> dict[str, Any]:
    """A trust entry as the CLI and the API show it (without the PEM text)."""
    return {"namespace": row.namespace, "name": row.name, "kind": row.kind,
            "algorithm": row.algorithm, "fingerprint": row.fingerprint,
            "identity": row.identity, "issuer": row.issuer,
            "created_at": row.created_at, "created_by": row.created_by}


class TrustService:
    """Manages trust entries; `changed(namespace)` is told after each committed change (the
    verifier forgets what it cached for the namespace)."""

    def __init__(self, database: Database, authorizer: Authorizer,
                 changed: Callable[[str], None] | None = None) -> None:
        self.database = database
        self.authorizer = authorizer
        self.changed = changed or (lambda namespace: None)

    def add(self, actor: Any, namespace: str, name: str, key_pem: bytes | None = None,
            chain_pem: bytes | None = None, identity: str | None = None,
            issuer: str | None = None, trusted_root: bytes | None = None) -> dict[str, Any]:
        """Trust a public key (`key_pem`), x509 root certificates (`chain_pem`), or a keyless
        identity (`identity` from OIDC `issuer`, per a sigstore `trusted_root`) for signatures
        in `namespace`; the new entry."""
        namespace = valid_namespace(namespace)
        require_namespace_admin(self.authorizer, actor, namespace)
        if not NAME_RE.match(name):
            raise NameInvalid("trust entry names are 1-64 of a-z 0-9 . _ - starting with a "
                              "letter or digit")
        keyless = (identity, issuer, trusted_root)
        if sum(x is not None for x in (key_pem, chain_pem, trusted_root or identity or issuer)) != 1:
            raise RegistryError("give one of a public key (--key), root certificates "
                                "(--certificate-chain) or a keyless identity (--identity, "
                                "--issuer, --trusted-root)")
        if any(x is not None for x in keyless) and not all(keyless):
            raise RegistryError("a keyless entry needs --identity, --issuer and --trusted-root")
        try:
            if trusted_root is not None:
                from .keyless import load_trusted_root, root_fingerprint

                load_trusted_root(trusted_root)
                kind, algorithm = KEYLESS, "sigstore"
                fingerprint, material = root_fingerprint(trusted_root), trusted_root.decode()
            elif key_pem is not None:
                key = load_public_key(key_pem)
                kind, algorithm, fingerprint, material = KEY, key.algorithm, key.fingerprint, key.pem
            else:
                certs = load_certificates(chain_pem or b"")
                kind, algorithm = X509, "x509"
                fingerprint, material = cert_fingerprint(certs[0]), roots_pem(certs)
        except BadMaterial as exc:
            raise RegistryError(str(exc)) from exc
        with self.database.write() as uow:
            if not uow.trust.add(namespace, name, kind, algorithm, fingerprint, material,
                                 getattr(actor, "name", None), identity, issuer):
                raise Conflict(f"namespace {namespace!r} already trusts an entry named {name!r}: "
                               f"remove it first or choose another name")
            uow.emit(policy_changed(actor, "trust.add", {
                "namespace": namespace, "name": name, "kind": kind, "algorithm": algorithm,
                "fingerprint": fingerprint, "identity": identity, "issuer": issuer}))
            row = next(r for r in uow.trust.list(namespace) if r.name == name)
        self.changed(namespace)
        return entry_dict(row)

    def list(self, actor: Any, namespace: str | None = None) -> list[dict[str, Any]]:
        """Entries of one namespace, or of every namespace the actor administers."""
        if namespace is not None:
            namespace = valid_namespace(namespace)
            require_namespace_admin(self.authorizer, actor, namespace)
        with self.database.read() as uow:
            rows = uow.trust.list(namespace)
        if namespace is None:
            from ..auth.authorizer import Action
            from ..auth.authorizer import namespace as ns_resource

            rows = [r for r in rows if self.authorizer.allows(
                actor, Action.ADMIN_NAMESPACE, ns_resource(r.namespace))]
        return [entry_dict(r) for r in rows]

    def remove(self, actor: Any, namespace: str, name: str) -> None:
        """Stop trusting an entry; signatures it verified no longer verify."""
        namespace = valid_namespace(namespace)
        require_namespace_admin(self.authorizer, actor, namespace)
        with self.database.write() as uow:
            if not uow.trust.remove(namespace, name):
                raise NotFound(f"namespace {namespace!r} has no trust entry {name!r}")
            uow.emit(policy_changed(actor, "trust.remove", {"namespace": namespace,
                                                            "name": name}))
        self.changed(namespace)
