"""What the lifecycle services share: who may change policies, event actors, name checks."""

from __future__ import annotations

from typing import Any

from ..auth.authorizer import SERVER, Action, Authorizer
from ..auth.authorizer import namespace as ns_resource
from ..events.types import Actor, PolicyChanged, records
from ..oci.errors import NameInvalid, RegistryError
from ..oci.reference import validate_name


class NotFound(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "not found"


class Conflict(RegistryError):
    code, status, default_message = "DENIED", 409, "conflict"


def require_namespace_admin(authorizer: Authorizer, actor: Any, namespace: str) -> None:
    """Raise unless `actor` may change the policies of `namespace`."""
    authorizer.require(actor, Action.ADMIN_NAMESPACE, ns_resource(namespace),
                       "change its policies")


def require_server_admin(authorizer: Authorizer, actor: Any, doing: str) -> None:
    """Raise unless `actor` administers the server."""
    authorizer.require(actor, Action.ADMIN_SERVER, SERVER, doing)


def valid_namespace(name: str) -> str:
    """`name` when it is a valid one-component namespace; NAME_INVALID otherwise."""
    if "/" in name or not name:
        raise NameInvalid("a namespace is one path component")
    validate_name(name)
    return name


def policy_changed(actor: Any, action: str, detail: dict[str, Any],
                   repository: str | None = None) -> list[dict[str, Any]]:
    """The PolicyChanged event record of an administrator's change (or summary)."""
    return records(PolicyChanged(actor=Actor.of(actor), repository=repository, action=action,
                                 detail=detail))
