"""Reachability over one repository's manifest graph (pure, no I/O).

A manifest is reachable from a root digest; from a reachable manifest its children (index
entries) are reachable, and so are its referrers (manifests whose subject it is): referrers
follow their subject.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..metadata.lifecycle_store import RepoGraph


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


def gc_roots(
    graph: RepoGraph, cutoff: float, collect_untagged: bool, restorable_since: float = 0.0
) -> set[str]:
    """What keeps manifests alive for the collector: tags, soft-deleted tags still restorable,
    manifests pushed or pulled within the grace period (and every manifest when untagged ones
    are left to retention)."""
    roots = {d for d, _ in graph.tags.values()}
    roots.update(d for _, d, t in graph.deleted_tags if t >= restorable_since)
    for m in graph.manifests.values():
        if not collect_untagged or m.created_at >= cutoff:
            roots.add(m.digest)
    roots.update(ref for ref, t in graph.pulls.items() if t >= cutoff and ref.count(":") == 1)
    return roots
