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
KEY, X509 = "key", "x509"


def entry_dict(row: TrustRow) -> dict[str, Any]:
    """A trust entry as the CLI and the API show it (without the PEM text)."""
    return {"namespace": row.namespace, "name": row.name, "kind": row.kind,
            "algorithm": row.algorithm, "fingerprint": row.fingerprint,
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
            chain_pem: bytes | None = None) -> dict[str, Any]:
        """Trust a public key (`key_pem`) or x509 root certificates (`chain_pem`) for
        signatures in `namespace`; the new entry."""
        namespace = valid_namespace(namespace)
        require_namespace_admin(self.authorizer, actor, namespace)
        if not NAME_RE.match(name):
            raise NameInvalid("trust entry names are 1-64 of a-z 0-9 . _ - starting with a "
                              "letter or digit")
        if (key_pem is None) == (chain_pem is None):
            raise RegistryError("give either a public key (--key) or root certificates "
                                "(--certificate-chain)")
        try:
            if key_pem is not None:
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
                                 getattr(actor, "name", None)):
                raise Conflict(f"namespace {namespace!r} already trusts an entry named {name!r}: "
                               f"remove it first or choose another name")
            uow.emit(policy_changed(actor, "trust.add", {
                "namespace": namespace, "name": name, "kind": kind, "algorithm": algorithm,
                "fingerprint": fingerprint}))
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
