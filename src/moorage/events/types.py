"""Domain events: one frozen dataclass per kind of state change, and who caused it.

An event is appended to the outbox in the transaction of its change (`to_record()` gives the
row); consumers read records back in id order. Fields every event shares are columns of the
outbox; what only one type carries goes into its JSON payload.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change, and from which address (passed from the handler down)."""

    name: str | None = None
    kind: str | None = None  # user | robot | anonymous | system
    address: str | None = None

    @staticmethod
    def of(principal: Any) -> Actor:
        """The actor of a principal (or of the CLI's and the scheduler's stand-ins)."""
        if isinstance(principal, Actor):
            return principal
        return Actor(getattr(principal, "name", None), getattr(principal, "kind", None),
                     getattr(principal, "address", None))


SYSTEM = Actor("moorage", "system", None)
_COMMON = frozenset({"actor", "repository", "digest", "tag", "time"})


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event has: actor, repository, digest, tag and time."""

    type: ClassVar[str] = "Event"
    actor: Actor = SYSTEM
    repository: str | None = None
    digest: str | None = None
    tag: str | None = None
    time: float = field(default_factory=time.time)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type = cls.__name__

    def payload(self) -> dict[str, Any] | None:
        """The type's own fields (None when it has none)."""
        extra = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _COMMON}
        return extra or None

    def to_record(self) -> dict[str, Any]:
        """The outbox row of this event (without its id, which the database assigns)."""
        return {
            "type": self.type,
            "time": self.time,
            "actor": self.actor.name,
            "actor_kind": self.actor.kind,
            "address": self.actor.address,
            "repository": self.repository,
            "digest": self.digest,
            "tag": self.tag,
            "payload": self.payload(),
        }


@dataclass(frozen=True, kw_only=True)
class BlobPushed(Event):
    """An upload was committed: the blob is now in the repository."""

    size: int


@dataclass(frozen=True, kw_only=True)
class BlobMounted(Event):
    """Existing content was linked into the repository (cross-repository mount)."""

    source: str | None = None


@dataclass(frozen=True, kw_only=True)
class BlobDeleted(Event):
    """A repository's link to a blob was removed."""


@dataclass(frozen=True, kw_only=True)
class ManifestPushed(Event):
    """A manifest was pushed; `reference` is the tag or digest it was pushed under; `stored` is
    False when the repository already held it (the push only moved tags)."""

    reference: str
    media_type: str
    size: int
    stored: bool = True


@dataclass(frozen=True, kw_only=True)
class TagMoved(Event):
    """A tag now points at `digest` (set by a push)."""


@dataclass(frozen=True, kw_only=True)
class TagDeleted(Event):
    """A tag was removed (restorable for the restore window); `by` is client or retention."""

    by: str = "client"


@dataclass(frozen=True, kw_only=True)
class TagRestored(Event):
    """A soft-deleted tag points at its manifest again."""


@dataclass(frozen=True, kw_only=True)
class ManifestDeleted(Event):
    """A manifest and its tags were deleted; `by` is client, gc or retention."""

    by: str = "client"


@dataclass(frozen=True, kw_only=True)
class ManifestPulled(Event):
    """A manifest was served; `reference` is the tag or digest asked for."""

    reference: str


@dataclass(frozen=True, kw_only=True)
class UploadExpired(Event):
    """An idle upload session was expired and its storage queued for deletion."""

    upload_id: str
    size: int


@dataclass(frozen=True, kw_only=True)
class Login(Event):
    """A login attempt at the token endpoint; `outcome` is success or denied."""

    outcome: str
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class UnusualActivity(Event):
    """Activity worth a look (`kind`: login_failures, …); also counted in
    `moorage_alerts_total{kind}`."""

    kind: str
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class AccessDenied(Event):
    """A request was refused; `action` is pull, push, delete, catalog or login."""

    action: str
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class RateLimited(Event):
    """Requests of one key went over a rate limit (recorded once per refusal window); `kind` is
    pull, push or login."""

    kind: str
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class PolicyChanged(Event):
    """A lifecycle policy changed or was applied (immutability.set, quota.set, retention.*)."""

    action: str
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class PullDenied(Event):
    """A namespace pull policy refused a manifest (or, in a dry run, would have): the rule and
    the sentence the client got."""

    reference: str
    rule: str
    message: str
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True)
class GcCompleted(Event):
    """A garbage collection run finished; `report` holds its counts."""

    trigger: str
    report: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class AdminAction(Event):
    """An account, robot, namespace or member change (user.create, member.set, ...)."""

    action: str
    outcome: str = "success"
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class WriteRefused(Event):
    """A push or delete the registry refused (quota, immutability, bad input): nothing changed,
    but the attempt is on the record. `action` is the audit action it would have been."""

    action: str
    reference: str | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class ScanCompleted(Event):
    """A manifest's scan report was written: its status (done, unsupported, failed) and the
    count of each kind of finding."""

    status: str
    reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class VulnerabilityFound(Event):
    """A scan (or a re-match) found vulnerabilities: one event per report, counts by
    severity."""

    total: int
    by_severity: dict[str, int] = field(default_factory=dict)
    rematch: bool = False


@dataclass(frozen=True, kw_only=True)
class SecretFound(Event):
    """A scan found secrets: how many, by which rules, in which files (never the secret)."""

    total: int
    rules: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ReplicationCompleted(Event):
    """A replication run finished: its rule, direction, upstream, trigger and counts (the
    repository is set when the run was for one pushed reference)."""

    rule: str
    run: int
    direction: str
    upstream: str
    trigger: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ReplicationFailed(Event):
    """An attempt of a replication run failed with `error`; `final` when no retry follows."""

    rule: str
    run: int
    direction: str
    upstream: str
    error: str
    attempt: int
    final: bool = False


def records(*events: Event) -> list[dict[str, Any]]:
    """The outbox rows of `events`."""
    return [e.to_record() for e in events]
