"""One repository's manifest graph as the collector and retention see it (pure, no I/O).

A manifest is reachable from a root digest; from a reachable manifest its children (index
entries) are reachable, and so are its referrers (manifests whose subject it is): referrers
follow their subject.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class ManifestNode:
    """A manifest of the graph: its id, digest, subject, push time, size and child digests."""

    id: int
    digest: str
    subject: str | None
    created_at: float
    size: int
    children: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RepoGraph:
    """One repository's manifests, their child links, tags and soft-deleted tags."""

    repository_id: int
    name: str
    manifests: dict[int, ManifestNode]
    tags: dict[str, tuple[str, float]]  # name -> (digest, pushed at)
    deleted_tags: list[tuple[str, str, float]]  # (name, digest, deleted at)
    pulls: dict[str, float] = field(default_factory=dict)  # tag or digest -> last pull


def reachable(graph: RepoGraph, roots: Iterable[str]) -> set[int]:
    """Ids of the manifests reachable from the `roots` digests."""
    by_digest = {m.digest: m for m in graph.manifests.values()}
    referrers: dict[str, list[str]] = {}
    for m in graph.manifests.values():
        if m.subject:
            referrers.setdefault(m.subject, []).append(m.digest)
    seen: set[int] = set()
    stack = [d for d in roots if d in by_digest]
    while stack:
        node = by_digest.get(stack.pop())
        if node is None or node.id in seen:
            continue
        seen.add(node.id)
        stack.extend(node.children)
        stack.extend(referrers.get(node.digest, ()))
    return seen
