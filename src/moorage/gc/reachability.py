"""What keeps manifests alive for the collector (pure, no I/O; the graph is policy/graph.py)."""

from __future__ import annotations

from ..policy.graph import RepoGraph


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
