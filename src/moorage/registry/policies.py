"""Namespace policies administrators set: immutable tags, quotas and usage, retention rules."""

from __future__ import annotations

from typing import Any

from ..auth.authorizer import Authorizer, OpenAuthorizer
from ..auth.scopes import namespace_of
from ..metadata.uow import Database, UnitOfWork
from ..oci.errors import RegistryError
from ..oci.reference import validate_name
from ..policy.immutability import split_exceptions, validate_pattern
from ..policy.quota import UploadQuota
from ..policy.retention import RetentionRules
from .access import (
    NotFound,
    policy_changed,
    require_namespace_admin,
    require_server_admin,
    valid_namespace,
)


class PolicyService:
    """Reads and changes the policies of a namespace; every change is a PolicyChanged event in
    the change's own transaction."""

    def __init__(self, database: Database, upload_quota: UploadQuota,
                 authorizer: Authorizer | None = None) -> None:
        self.database = database
        self.upload_quota = upload_quota  # its cached figures are dropped when a quota changes
        self.authorizer = authorizer or OpenAuthorizer()

    def _require(self, actor: Any, namespace: str) -> str:
        namespace = valid_namespace(namespace)
        require_namespace_admin(self.authorizer, actor, namespace)
        return namespace

    # -- immutability -------------------------------------------------------------------------

    def list_immutability(self, actor: Any, namespace: str) -> list[dict[str, Any]]:
        """The immutability rules of a namespace."""
        namespace = self._require(actor, namespace)
        with self.database.read() as uow:
            rules = uow.policies.immutability_rules(namespace)
        return [
            {"pattern": r["pattern"], "exceptions": split_exceptions(r["exceptions"]),
             "created_by": r["created_by"], "created_at": r["created_at"]}
            for r in rules
        ]

    def add_immutability(self, actor: Any, namespace: str, pattern: str,
                         exceptions: list[str] | str | None) -> None:
        """Make tags matching `pattern` (minus `exceptions`) immutable in `namespace`."""
        namespace = self._require(actor, namespace)
        try:
            validate_pattern(pattern)
            excepted = [validate_pattern(e) for e in split_exceptions(exceptions)]
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        with self.database.write() as uow:
            uow.policies.add_immutability_rule(namespace, pattern, ",".join(excepted),
                                               getattr(actor, "name", None))
            uow.emit(policy_changed(actor, "immutability.set", {
                "namespace": namespace, "pattern": pattern, "exceptions": excepted}))

    def remove_immutability(self, actor: Any, namespace: str, pattern: str) -> None:
        """Remove one rule; NAME_UNKNOWN when there is none."""
        namespace = self._require(actor, namespace)
        with self.database.write() as uow:
            removed = uow.policies.remove_immutability_rule(namespace, pattern)
            if removed:
                uow.emit(policy_changed(actor, "immutability.remove",
                                        {"namespace": namespace, "pattern": pattern}))
        if not removed:
            raise NotFound(f"no immutability rule {pattern!r} in {namespace!r}")

    # -- quotas and usage ---------------------------------------------------------------------

    def set_quota(self, actor: Any, namespace: str, limit: int | None) -> dict[str, Any]:
        """Set (None: remove) the byte quota of a namespace; its usage with the new quota."""
        namespace = self._require(actor, namespace)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 0):
            raise RegistryError("a quota is a whole number of bytes ≥ 0")
        with self.database.write() as uow:
            uow.policies.set_quota(namespace, limit, getattr(actor, "name", None))
            uow.emit(policy_changed(actor, "quota.set",
                                    {"namespace": namespace, "limit_bytes": limit}))
            usage = _usage(uow, namespace)
        self.upload_quota.forget(namespace)
        return usage

    def usage(self, actor: Any, namespace: str) -> dict[str, Any]:
        """Usage of a namespace and each of its repositories, with the quota if any."""
        namespace = self._require(actor, namespace)
        with self.database.read() as uow:
            return _usage(uow, namespace)

    def recount_usage(self, actor: Any, apply: bool) -> dict[str, tuple[int, int]]:
        """Recount every namespace's usage from its manifests; {namespace: (stored, recounted)}
        where the stored total was wrong, and with `apply` store the recount (server admins)."""
        require_server_admin(self.authorizer, actor, "recount usage")
        if not apply:
            with self.database.read() as uow:
                return uow.usage.repair(apply=False)
        with self.database.write() as uow:
            wrong = uow.usage.repair(apply=True)
            uow.emit(policy_changed(actor, "quota.recount", {"corrected": len(wrong)}))
        self.upload_quota.forget()
        return wrong

    # -- retention ----------------------------------------------------------------------------

    def set_policy(self, actor: Any, namespace: str, repository: str | None,
                   rules: dict[str, Any] | None) -> dict[str, Any] | None:
        """Set (or with None remove) the retention policy of a namespace or one repository."""
        namespace = self._require(actor, namespace)
        if repository is not None:
            validate_name(repository)
            if namespace_of(repository) != namespace:
                raise RegistryError(f"repository {repository!r} is not in {namespace!r}")
        parsed = None
        if rules is not None:
            try:
                parsed = RetentionRules.from_dict(rules).to_dict()
            except ValueError as exc:
                raise RegistryError(str(exc)) from None
        with self.database.write() as uow:
            uow.policies.set_retention(namespace, repository, parsed, getattr(actor, "name", None))
            uow.emit(policy_changed(
                actor, "retention.set" if parsed is not None else "retention.remove",
                {"namespace": namespace, "repository": repository, "rules": parsed}))
        return parsed

    def policies(self, actor: Any, namespace: str) -> list[dict[str, Any]]:
        """The retention policies of a namespace and its repositories."""
        namespace = self._require(actor, namespace)
        with self.database.read() as uow:
            policies = uow.policies.retention(namespace)
        return [
            {"namespace": p["namespace"], "repository": p["repository"], "rules": p["rules"],
             "created_by": p["created_by"], "updated_at": p["updated_at"]}
            for p in policies
        ]


def _usage(uow: UnitOfWork, namespace: str) -> dict[str, Any]:
    """A namespace's usage, each repository's, and its quota (None: no quota)."""
    return {
        "namespace": namespace,
        "usage_bytes": uow.usage.total(namespace),
        "limit_bytes": uow.policies.quota(namespace),
        "repositories": uow.usage.by_repository(namespace),
    }
