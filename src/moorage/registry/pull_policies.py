"""`moorage policy set|show`: each namespace's admission policy at pull, set by its admins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..auth.authorizer import Authorizer
from ..metadata.uow import Database
from ..policy.pull import PullPolicy
from .access import policy_changed, require_namespace_admin, valid_namespace


class PullPolicyService:
    """Reads and replaces namespace pull policies; every change is a PolicyChanged event in its
    own write, and `changed(namespace)` is told after it commits (this process's cache)."""

    def __init__(self, database: Database, authorizer: Authorizer,
                 changed: Callable[[str], None] | None = None) -> None:
        self.database = database
        self.authorizer = authorizer
        self.changed = changed or (lambda namespace: None)

    def set(self, actor: Any, namespace: str, policy: dict[str, Any]) -> dict[str, Any]:
        """Replace the namespace's whole pull policy (a rule not given is off); the saved one."""
        namespace = valid_namespace(namespace)
        require_namespace_admin(self.authorizer, actor, namespace)
        saved = PullPolicy.parse(policy).to_dict()
        with self.database.write() as uow:
            version = uow.pull_policies.set(namespace, saved, getattr(actor, "name", None))
            uow.emit(policy_changed(actor, "pull_policy.set",
                                    {"namespace": namespace, "version": version, **saved}))
        self.changed(namespace)
        return {"namespace": namespace, "version": version, **saved}

    def show(self, actor: Any, namespace: str) -> dict[str, Any]:
        """The namespace's pull policy (every rule off, version 0, when none was set)."""
        namespace = valid_namespace(namespace)
        require_namespace_admin(self.authorizer, actor, namespace)
        with self.database.read() as uow:
            found = uow.pull_policies.get(namespace)
        policy, version = found if found else (PullPolicy().to_dict(), 0)
        return {"namespace": namespace, "version": version, **PullPolicy.parse(policy).to_dict()}
