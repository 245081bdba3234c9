"""Retention rules and the plan they make for one repository (pure, no I/O).

A policy keeps a tag when ANY keep rule keeps it (the union), and untags the rest (a soft delete:
restorable for the restore window, then the collector reclaims what nothing else references).
Immutable tags are always kept. Untagged manifests older than `untagged_days` (and not pulled
since) are deleted at once, unless an index that stays, or a subject that stays, needs them;
referrers (signatures, SBOMs) follow their subject.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from .graph import RepoGraph, reachable
from .immutability import matching_rule

DAY = 86400.0
RULE_KEYS = ("keep_last_pushed", "keep_last_pulled", "keep_tags", "keep_days", "untagged_days")


@dataclass(frozen=True)
class RetentionRules:
    """One policy's rules; None means the rule is not set."""

    keep_last_pushed: int | None = None
    keep_last_pulled: int | None = None
    keep_tags: tuple[str, ...] = ()
    keep_days: float | None = None
    untagged_days: float | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RetentionRules:
        """Validate a rules object (API / CLI input); ValueError with a readable message."""
        unknown = set(raw) - set(RULE_KEYS)
        if unknown:
            raise ValueError(f"unknown retention rules: {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(RULE_KEYS)}")
        values: dict[str, Any] = {}
        for key in ("keep_last_pushed", "keep_last_pulled"):
            v = raw.get(key)
            if v is not None:
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ValueError(f"{key} is a whole number ≥ 0")
                values[key] = v
        for key in ("keep_days", "untagged_days"):
            v = raw.get(key)
            if v is not None:
                if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                    raise ValueError(f"{key} is a number of days ≥ 0")
                values[key] = float(v)
        tags = raw.get("keep_tags")
        if tags is not None:
            if isinstance(tags, str):
                tags = [t for t in tags.split(",") if t.strip()]
            if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
                raise ValueError("keep_tags is a list of tag patterns")
            values["keep_tags"] = tuple(t.strip() for t in tags)
        rules = cls(**values)
        if not rules.touches_tags and rules.untagged_days is None:
            raise ValueError(f"a policy needs at least one rule: {', '.join(RULE_KEYS)}")
        return rules

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in RULE_KEYS:
            v = getattr(self, key)
            if v is not None and v != ():
                out[key] = list(v) if isinstance(v, tuple) else v
        return out

    @property
    def touches_tags(self) -> bool:
        return (
            self.keep_last_pushed is not None
            or self.keep_last_pulled is not None
            or bool(self.keep_tags)
            or self.keep_days is not None
        )


@dataclass
class RepoPlan:
    """What a policy does to one repository."""

    repository: str
    tags: list[tuple[str, str]] = field(default_factory=list)  # (tag, digest) to untag
    manifests: list[int] = field(default_factory=list)  # ids deleted at once (untagged)
    later: list[int] = field(default_factory=list)  # ids collected after the restore window


def plan_repository(
    graph: RepoGraph,
    rules: RetentionRules,
    immutable: list[tuple[str, str]],
    now: float,
) -> RepoPlan:
    """Decide which tags to untag and which untagged manifests to delete."""
    plan = RepoPlan(graph.name)
    doomed_tags: set[str] = set()
    if rules.touches_tags:
        keep: set[str] = set()
        names = list(graph.tags)
        if rules.keep_last_pushed is not None:
            by_push = sorted(names, key=lambda n: (graph.tags[n][1], n), reverse=True)
            keep.update(by_push[: rules.keep_last_pushed])
        if rules.keep_last_pulled is not None:
            pulled = [n for n in names if n in graph.pulls]
            by_pull = sorted(pulled, key=lambda n: (graph.pulls[n], n), reverse=True)
            keep.update(by_pull[: rules.keep_last_pulled])
        if rules.keep_tags:
            keep.update(n for n in names if any(fnmatchcase(n, p) for p in rules.keep_tags))
        if rules.keep_days is not None:
            since = now - rules.keep_days * DAY
            keep.update(
                n for n in names
                if graph.tags[n][1] >= since or graph.pulls.get(n, 0.0) >= since
            )
        keep.update(n for n in names if matching_rule(n, immutable))
        doomed_tags = set(names) - keep
        plan.tags = sorted((n, graph.tags[n][0]) for n in doomed_tags)
    remaining = {d for n, (d, _) in graph.tags.items() if n not in doomed_tags}
    soft = {d for _, d, _ in graph.deleted_tags}
    young: set[str] = set()
    if rules.untagged_days is not None:
        since = now - rules.untagged_days * DAY
        young = {
            m.digest for m in graph.manifests.values()
            if m.created_at >= since or graph.pulls.get(m.digest, 0.0) >= since
        }
        kept = reachable(graph, remaining | soft | {d for _, d in plan.tags} | young)
        plan.manifests = sorted(set(graph.manifests) - kept)
    # What the untagging orphans: collected once the restore window has passed.
    orphaned = reachable(graph, {d for _, d in plan.tags}) - reachable(
        graph, remaining | soft | young
    )
    plan.later = sorted(orphaned - set(plan.manifests))
    return plan
