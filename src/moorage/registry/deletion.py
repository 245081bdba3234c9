"""Deleting tags and manifests against the immutability rules; soft delete and restore."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..auth.authorizer import Authorizer, OpenAuthorizer
from ..auth.scopes import namespace_of
from ..events.types import Actor, TagRestored, records
from ..metadata.queries.deletion import ManifestGone, NothingToRestore, TagTaken
from ..metadata.uow import Database
from ..oci.errors import Denied, ManifestInvalid, ManifestUnknown
from ..oci.reference import validate_name, validate_tag
from ..policy.immutability import denial_message, matching_rule
from .access import Conflict, require_namespace_admin

Records = Sequence[Mapping[str, Any]]


class ImmutabilityRules(Protocol):
    """Where the immutability rules and a manifest's tags are read (the policies' store)."""

    def immutability_rules(self, namespace: str | None = None) -> list[dict[str, Any]]: ...

    def tags_of(self, repository: str, digest: str) -> list[str]: ...


class DeletionService:
    """Delete checks, soft delete (untag into a restore list), listing and restoring."""

    def __init__(self, database: Database, rules: ImmutabilityRules, restore_window: float,
                 authorizer: Authorizer | None = None) -> None:
        self.database = database
        self.rules = rules
        self.restore_window = restore_window
        self.authorizer = authorizer or OpenAuthorizer()

    def _rules(self, namespace: str) -> list[tuple[str, str]]:
        return [(r["pattern"], r["exceptions"]) for r in self.rules.immutability_rules(namespace)]

    def check_tag_delete(self, repository: str, tag: str) -> None:
        """DENIED when `tag` is immutable."""
        namespace = namespace_of(repository)
        rules = self._rules(namespace)
        pattern = matching_rule(tag, rules) if rules else None
        if pattern is not None:
            raise Denied(denial_message(tag, pattern, namespace, "deleted"),
                         detail={"tag": tag, "rule": pattern})

    def check_manifest_delete(self, repository: str, digest: str) -> None:
        """DENIED when an immutable tag points at the manifest."""
        namespace = namespace_of(repository)
        rules = self._rules(namespace)
        if not rules:
            return
        for tag in self.rules.tags_of(repository, digest):
            pattern = matching_rule(tag, rules)
            if pattern is not None:
                raise Denied(denial_message(tag, pattern, namespace, "deleted"),
                             detail={"tag": tag, "rule": pattern})

    def soft_delete_tag(self, repository: str, tag: str, actor: str | None = None,
                        events: Callable[[str], Records] | None = None) -> bool:
        """Untag, restorable for the restore window; `events(digest)` are emitted with it.
        False when there is no such tag."""
        with self.database.write() as uow:
            repo_id = uow.repositories.id_of(repository)
            if repo_id is None:
                return False
            digest = uow.deletion.soft_delete_tag(repo_id, tag, actor)
            if digest is None:
                return False
            if events is not None:
                uow.emit(events(digest))
        return True

    def deleted_tags(self, actor: Any, repository: str) -> list[dict[str, Any]]:
        """Restorable tags of a repository, newest first."""
        require_namespace_admin(self.authorizer, actor, namespace_of(repository))
        with self.database.read() as uow:
            return uow.deletion.deleted_tags(repository, time.time() - self.restore_window)

    def restore_tag(self, actor: Any, repository: str, tag: str, force: bool = False) -> str:
        """Bring back a soft-deleted tag; returns the digest it points at again."""
        require_namespace_admin(self.authorizer, actor, namespace_of(repository))
        validate_name(repository)
        validate_tag(tag)
        since = time.time() - self.restore_window
        try:
            with self.database.write() as uow:
                repo_id = uow.repositories.id_of(repository)
                if repo_id is None:
                    raise NothingToRestore(tag)
                uow.repositories.lock(repo_id, exclusive=False)
                digest = uow.deletion.restore_tag(repo_id, tag, since, force)
                uow.emit(records(TagRestored(actor=Actor.of(actor), repository=repository,
                                             tag=tag, digest=digest)))
        except NothingToRestore:
            raise ManifestUnknown(f"no restorable tag {tag!r} in {repository}") from None
        except TagTaken as exc:
            raise Conflict(f"tag {tag!r} now points at {exc.args[0]}; use force to replace "
                           "it") from None
        except ManifestGone:
            raise ManifestInvalid(f"the manifest of {tag!r} is gone") from None
        return digest
