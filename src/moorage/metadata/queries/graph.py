"""Manifest graphs per repository: what the collector and retention read, and their deletes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select

from ...policy.graph import ManifestNode, RepoGraph
from ..schema import blobs, deleted_tags, manifest_references, manifests, pull_times, repositories
from ..schema import tags as tags_table
from . import derived, usage

if TYPE_CHECKING:
    from ..uow import UnitOfWork

CHUNK = 500  # ids per IN (...) list


def namespace_filter(namespace: str) -> Any:
    """Repositories of a namespace: the namespace itself and everything under `namespace/`."""
    return or_(
        repositories.c.name == namespace,
        repositories.c.name.startswith(namespace + "/", autoescape=True),
    )


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


class GraphQueries:
    """Repository graphs within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def repository_ids(self) -> list[tuple[int, str]]:
        """(id, name) of every repository, by id."""
        return [(i, n) for i, n in self.conn.execute(
            select(repositories.c.id, repositories.c.name).order_by(repositories.c.id))]

    def repositories_in(self, namespace: str) -> list[str]:
        """Names of the repositories of a namespace, sorted."""
        return list(self.conn.execute(
            select(repositories.c.name).where(namespace_filter(namespace))
            .order_by(repositories.c.name)
        ).scalars())

    def graph(self, repo_id: int, name: str, with_pulls: bool = False) -> RepoGraph:
        """One repository's manifests, child links, tags, soft-deleted tags (and pull times)."""
        conn = self.conn
        nodes = {
            i: ManifestNode(i, d, s, c, z)
            for i, d, s, c, z in conn.execute(
                select(manifests.c.id, manifests.c.digest, manifests.c.subject_digest,
                       manifests.c.created_at, manifests.c.size)
                .where(manifests.c.repository_id == repo_id)
            )
        }
        for mid, digest in conn.execute(
            select(manifest_references.c.manifest_id, manifest_references.c.digest)
            .join(manifests, manifests.c.id == manifest_references.c.manifest_id)
            .where(manifests.c.repository_id == repo_id, manifest_references.c.kind == "manifest")
        ):
            if mid in nodes:  # a read outside a transaction may see a manifest pushed since
                nodes[mid].children.append(digest)
        tag_map = {
            n: (d, u)
            for n, d, u in conn.execute(
                select(tags_table.c.name, tags_table.c.manifest_digest, tags_table.c.updated_at)
                .where(tags_table.c.repository_id == repo_id)
            )
        }
        soft = [
            (n, d, t)
            for n, d, t in conn.execute(
                select(deleted_tags.c.name, deleted_tags.c.manifest_digest,
                       deleted_tags.c.deleted_at).where(deleted_tags.c.repository_id == repo_id)
            )
        ]
        graph = RepoGraph(repo_id, name, nodes, tag_map, soft)
        if with_pulls:
            graph.pulls = {
                ref: t
                for ref, t in conn.execute(
                    select(pull_times.c.reference, pull_times.c.pulled_at)
                    .where(pull_times.c.repository == name)
                )
            }
        return graph

    def delete_manifests(self, ids: Sequence[int]) -> None:
        """Delete manifests (and their references), keeping the usage totals right."""
        ids = list(ids)
        usage.on_manifests_deleted(self.conn, ids)
        derived.on_manifests_deleted(self.conn, ids)
        for part in _chunks(ids):
            self.conn.execute(
                delete(manifest_references).where(manifest_references.c.manifest_id.in_(part)))
            self.conn.execute(delete(manifests).where(manifests.c.id.in_(part)))

    def referenced_elsewhere(self, digests: Iterable[str], excluded_ids: set[int]) -> set[str]:
        """Those of `digests` still referenced by a manifest not in `excluded_ids`."""
        found: set[str] = set()
        for part in _chunks(list(set(digests))):
            for mid, digest in self.conn.execute(
                select(manifest_references.c.manifest_id, manifest_references.c.digest)
                .where(manifest_references.c.digest.in_(part))
            ):
                if mid not in excluded_ids:
                    found.add(digest)
        return found

    def blob_refs_of(self, manifest_ids: Iterable[int]) -> set[str]:
        """Digests of the blobs the manifests reference."""
        out: set[str] = set()
        for part in _chunks(list(manifest_ids)):
            out.update(self.conn.execute(
                select(manifest_references.c.digest).where(
                    manifest_references.c.manifest_id.in_(part),
                    manifest_references.c.kind == "blob",
                )
            ).scalars())
        return out

    def blob_sizes(self, digests: Iterable[str]) -> dict[str, int]:
        """{digest: size} of the recorded blobs among `digests`."""
        out: dict[str, int] = {}
        for part in _chunks(list(set(digests))):
            out.update({d: s for d, s in self.conn.execute(
                select(blobs.c.digest, blobs.c.size).where(blobs.c.digest.in_(part)))})
        return out
