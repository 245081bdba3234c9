"""What the web UI shows of repositories, tags and manifests: read-only, and only what the
caller may pull (a repository the caller may not pull does not exist for them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..auth.authorizer import Action, Authorizer
from ..auth.authorizer import repository as repo_resource
from ..auth.identity import Principal
from ..auth.scopes import namespace_of
from ..oci.digest import parse_digest
from ..oci.errors import ManifestUnknown, NameUnknown, RegistryError
from .blobs import BlobService
from .referrers import ReferrerService

if TYPE_CHECKING:
    from ..metadata.uow import Database
    from ..storage.base import BlobStore

SCAN_PAGE = 500  # repositories read per round while filtering by access
MAX_SCANNED = 20_000  # repositories looked at for one listing (a search narrows past that)
MAX_TAGS = 1000
MAX_CONFIG_BYTES = 1 << 20  # larger image configs are not shown
MAX_REFERRERS = 200


@dataclass
class RepositoryView:
    """One repository's tags and marks, as its page shows them."""

    name: str
    tags: list[dict[str, Any]]
    children: dict[str, bytes]  # child manifests of the indexes the tags point at
    pulls: dict[str, float]
    deleted: list[dict[str, Any]]
    immutable_rules: list[tuple[str, str]]


@dataclass
class ManifestView:
    """One manifest with what it refers to and what refers to it."""

    repository: str
    digest: str
    media_type: str
    size: int
    content: dict[str, Any]
    tags: list[str]
    config: dict[str, Any] | None
    referrers: list[dict[str, Any]]
    children: dict[str, bytes] = field(default_factory=dict)


class BrowseService:
    """Reads for the UI, filtered by the Authorizer's PULL decision."""

    def __init__(self, database: Database, authorizer: Authorizer, blobs: BlobService,
                 store: BlobStore, referrers: ReferrerService) -> None:
        self.database = database
        self.authorizer = authorizer
        self.blobs = blobs
        self.store = store
        self.referrers = referrers

    def _may_pull(self, principal: Principal, name: str) -> bool:
        return self.authorizer.allows(principal, Action.PULL, repo_resource(name))

    def _require_pull(self, principal: Principal, name: str) -> None:
        # Hidden, not refused: an outsider does not learn that a private repository exists.
        if not self._may_pull(principal, name):
            raise NameUnknown("no such repository (or you may not pull from it)")

    def repositories(self, principal: Principal, search: str | None, limit: int = 200
                     ) -> list[dict[str, Any]]:
        """Up to `limit` repositories the caller may pull (names containing `search`), with
        size, tag count, last push and last pull."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        scanned = 0
        while len(found) < limit and scanned < MAX_SCANNED:
            with self.database.read() as uow:
                page = uow.browse.repositories(search or None, after, SCAN_PAGE)
            found += [r for r in page if self._may_pull(principal, r["name"])]
            scanned += len(page)
            if len(page) < SCAN_PAGE:
                break
            after = page[-1]["name"]
        found = found[:limit]
        names = [r["name"] for r in found]
        with self.database.read() as uow:
            sizes = uow.browse.sizes(names)
            pulls = uow.browse.last_pulls(names)
        for r in found:
            r["size"] = sizes.get(r["name"], 0)
            r["last_pull"] = pulls.get(r["name"])
            r["namespace"] = namespace_of(r["name"])
        return found

    def repository(self, principal: Principal, name: str) -> RepositoryView:
        """A repository's tags (newest push first) with what the tag page marks."""
        self._require_pull(principal, name)
        with self.database.read() as uow:
            tags = uow.browse.tags(name, MAX_TAGS)
            if tags is None:
                raise NameUnknown("no such repository (or you may not pull from it)")
            pulls = uow.browse.pulls_of(name)
            deleted = uow.browse.deleted_tags(name, MAX_TAGS)
            rules = uow.policies.rules(namespace_of(name))
            children = uow.browse.manifests(name, _child_digests(t["content"] for t in tags))
        return RepositoryView(name, tags, children, pulls, deleted, rules)

    def manifest(self, principal: Principal, name: str, reference: str) -> ManifestView:
        """A manifest by tag or digest, its image config (when small), children and
        referrers."""
        self._require_pull(principal, name)
        by_digest = ":" in reference
        if by_digest:
            try:
                reference = str(parse_digest(reference))
            except RegistryError:
                raise ManifestUnknown(detail={"reference": reference}) from None
        with self.database.read() as uow:
            row = uow.manifests.get(name, reference if by_digest else None,
                                    None if by_digest else reference, True)
            if row is None or row.content is None:
                raise ManifestUnknown(detail={"reference": reference})
            tags = uow.tags.tags_of(name, row.digest)
            content = json.loads(row.content)
            children = uow.browse.manifests(name, _child_digests([row.content]))
        config = self._config(name, content)
        page = self.referrers.list(name, parse_digest(row.digest), None, None, MAX_REFERRERS)
        return ManifestView(name, row.digest, row.media_type, row.size, content, sorted(tags),
                            config, page.descriptors, children)

    def _config(self, name: str, content: dict[str, Any]) -> dict[str, Any] | None:
        desc = content.get("config")
        if not isinstance(desc, dict) or "json" not in str(desc.get("mediaType", "")):
            return None
        try:
            blob = self.blobs.locate(name, parse_digest(str(desc.get("digest"))))
        except RegistryError:
            return None
        if blob.size > MAX_CONFIG_BYTES:
            return None
        try:
            data = json.loads(b"".join(self.store.open_blob(blob.storage_key, 0, blob.size)))
        except (ValueError, OSError):
            return None
        return data if isinstance(data, dict) else None


def _child_digests(contents: Any) -> list[str]:
    """The digests of the manifests the indexes among `contents` list."""
    out: list[str] = []
    for raw in contents:
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        for m in doc.get("manifests") or [] if isinstance(doc, dict) else []:
            if isinstance(m, dict) and isinstance(m.get("digest"), str):
                out.append(m["digest"])
    return out
