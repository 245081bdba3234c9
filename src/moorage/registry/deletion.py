"""Deleting tags and manifests against the immutability rules; soft delete and restore."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..auth.authorizer import Authorizer, OpenAuthorizer
from ..auth.scopes import namespace_of
from ..events.types import Actor, TagRestored, records
from ..metadata.queries.deletion import ManifestGone, NothingToRestore, TagTaken
from ..metadata.uow import Database, UnitOfWork
from ..oci.errors import Denied, ManifestInvalid, ManifestUnknown
from ..oci.reference import validate_name, validate_tag
from ..policy.immutability import denial_message, matching_rule
from .access import Conflict, require_namespace_admin

Records = Sequence[Mapping[str, Any]]


def refuse_immutable_manifest_delete(uow: UnitOfWork, repository: str, digest: str) -> None:
    """DENIED when an immutable tag points at the manifest (inside the delete's unit of work)."""
    namespace = namespace_of(repository)
    rules = uow.policies.rules(namespace)
    if not rules:
        return
    for tag in uow.tags.tags_of(repository, digest):
        pattern = matching_rule(tag, rules)
        if pattern is not None:
            raise Denied(denial_message(tag, pattern, namespace, "deleted"),
                         detail={"tag": tag, "rule": pattern})


class DeletionService:
    """Delete checks, soft delete (untag into a restore list), listing and restoring."""

    def __init__(self, database: Database, restore_window: float,
                 authorizer: Authorizer | None = None) -> None:
        self.database = database
        self.restore_window = restore_window
        self.authorizer = authorizer or OpenAuthorizer()

    def check_tag_delete(self, repository: str, tag: str) -> None:
        """DENIED when `tag` is immutable."""
        namespace = namespace_of(repository)
        with self.database.read() as uow:
            rules = uow.policies.rules(namespace)
        pattern = matching_rule(tag, rules) if rules else None
        if pattern is not None:
            raise Denied(denial_message(tag, pattern, namespace, "deleted"),
                         detail={"tag": tag, "rule": pattern})

    def check_manifest_delete(self, repository: str, digest: str) -> None:
        """DENIED when an immutable tag points at the manifest."""
        with self.database.read() as uow:
            refuse_immutable_manifest_delete(uow, repository, digest)

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
