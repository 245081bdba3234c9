"""The admission chain: small checks a push (or a pull) must pass, run inside its unit of work.

Each check has one method, `check(uow, request)`, and raises the spec's error with a sentence a
user can act on. Push checks run after the repository is locked and the manifest's links are
refreshed, before any row is written; pull checks run before content is served. Signature,
vulnerability and secret policies plug in here as further checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..oci.errors import Denied, ManifestBlobUnknown, ManifestInvalid
from .immutability import denial_message, matching_rule
from .quota import quota_denied


@dataclass(frozen=True, slots=True)
class PushRequest:
    """What a manifest push would store, as the checks see it."""

    repository: str
    namespace: str
    repository_id: int
    digest: str
    size: int
    blob_digests: tuple[str, ...]
    child_digests: tuple[str, ...]
    declared_sizes: Mapping[str, int] = field(default_factory=dict)
    non_distributable: frozenset[str] = frozenset()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A manifest about to be served."""

    repository: str
    namespace: str
    reference: str
    digest: str
    media_type: str
    actor: Any = None


class PushCheck(Protocol):
    """One rule a push must pass."""

    def check(self, uow: Any, push: PushRequest) -> None:
        """Return when the push may go on; raise the spec's error otherwise."""
        ...


class PullCheck(Protocol):
    """One rule a pull must pass."""

    def check(self, uow: Any, pull: PullRequest) -> None:
        """Return when the manifest may be served; raise the spec's error otherwise."""
        ...


class AdmissionChain:
    """The push and pull checks of this registry, run in order; the first refusal wins."""

    def __init__(self, push: Sequence[PushCheck] = (), pull: Sequence[PullCheck] = ()) -> None:
        self.push = tuple(push)
        self.pull = tuple(pull)

    def check_push(self, uow: Any, push: PushRequest) -> None:
        """Run every push check."""
        for rule in self.push:
            rule.check(uow, push)

    def check_pull(self, uow: Any, pull: PullRequest) -> None:
        """Run every pull check."""
        for rule in self.pull:
            rule.check(uow, pull)


class ReferencesPresent:
    """Every blob and child manifest a manifest names is in its repository, with the size its
    descriptor declares (the blobs' rows stay locked against a concurrent GC sweep)."""

    def check(self, uow: Any, push: PushRequest) -> None:
        wanted = [d for d in push.blob_digests if d not in push.non_distributable]
        present = uow.blobs.linked_sizes(push.repository_id, wanted)
        missing = sorted(set(wanted) - set(present))
        if missing:
            raise ManifestBlobUnknown(f"blob {missing[0]} is not in {push.repository}",
                                      detail={"digest": missing[0]})
        for digest, size in push.declared_sizes.items():
            if digest in present and present[digest] != size:
                raise ManifestInvalid(
                    f"descriptor of {digest} says {size} bytes, the blob has {present[digest]}"
                )
        gone = sorted(set(push.child_digests)
                      - uow.manifests.present(push.repository_id, push.child_digests))
        if gone:
            raise ManifestBlobUnknown(f"manifest {gone[0]} is not in {push.repository}",
                                      detail={"digest": gone[0]})


class ImmutableTags:
    """A tag an immutability rule covers never moves to another manifest."""

    def check(self, uow: Any, push: PushRequest) -> None:
        if not push.tags:
            return
        rules = uow.policies.rules(push.namespace)
        if not rules:
            return
        for tag in push.tags:
            pattern = matching_rule(tag, rules)
            if pattern is None:
                continue
            current = uow.tags.digest_of(push.repository_id, tag)
            if current is not None and current != push.digest:
                raise Denied(denial_message(tag, pattern, push.namespace, "moved"),
                             detail={"tag": tag, "rule": pattern})


class NamespaceQuota:
    """A push never takes its namespace over its quota: O(manifest), on the stored totals."""

    def check(self, uow: Any, push: PushRequest) -> None:
        limit = uow.policies.quota(push.namespace)
        if limit is None:
            return
        added = uow.usage.bytes_added(push.namespace, push.blob_digests, push.child_digests,
                                      push.digest, push.size)
        if not added:
            return
        used = uow.usage.total(push.namespace, lock=True)
        if used + added > limit:
            raise quota_denied(push.namespace, used, limit, added)


def default_chain(allow_sparse: bool) -> AdmissionChain:
    """The checks every registry runs: references (unless sparse pushes are allowed),
    immutable tags and the namespace quota on push; none yet on pull."""
    push: list[PushCheck] = [] if allow_sparse else [ReferencesPresent()]
    push += [ImmutableTags(), NamespaceQuota()]
    return AdmissionChain(push=push, pull=[])
