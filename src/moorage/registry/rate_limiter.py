"""The request side of rate limits: which buckets a request is charged to, and the charge.

The configured limits are cached per process for `cache_seconds` (and dropped at once when this
process changes them), so a request no limit applies to costs a dictionary lookup. A charged
request is one conditional UPDATE in the database, so every worker and node shares the bucket.
A refusal is logged and audited once per window (the first refusal after the bucket was last
refused a window ago claims it in the bucket row).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..events.types import Actor, RateLimited, records
from ..metadata.uow import Database
from ..policy.ratelimit import ANONYMOUS_TARGET, Limits, Rate, charge, retry_header

log = logging.getLogger("moorage.ratelimit")
KEY_LENGTH = 600
_FORGET_EVERY = 256  # one charge in this many also drops full buckets (in a write of its own)

LimitTable = dict[tuple[str, str], Limits]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket a request is charged to, and the limit that made it."""

    key: str
    rate: Rate
    burst: int
    target: str  # who the limit is set on, for messages: `robot robot$ci`, `namespace team`


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request waits: the bucket that is over, and for how long."""

    kind: str
    bucket: Bucket
    retry_after: float

    @property
    def message(self) -> str:
        """The sentence the client reads."""
        return (f"{self.kind} rate limit of {self.bucket.target} ({self.bucket.rate}, burst "
                f"{self.bucket.burst}) exceeded: retry in {retry_header(self.retry_after)} s")


def _who(principal: Any, address: str | None) -> str:
    if principal is None or principal.anonymous:
        return f"addr:{address or '-'}"
    return f"{principal.kind}:{principal.name}"


class RateLimiter:
    """Charges requests to the buckets of the limits that apply to them."""

    def __init__(self, database: Database, cache_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._limits: LimitTable = {}
        self._loaded_at = float("-inf")

    @property
    def stale(self) -> bool:
        """Whether the cached limits must be read again before use."""
        return time.monotonic() - self._loaded_at >= self.cache_seconds

    def forget(self) -> None:
        """Drop the cached limits (this process just changed them)."""
        self._loaded_at = float("-inf")

    def load(self) -> LimitTable:
        """Read the configured limits into the cache."""
        with self.database.read() as uow:
            rows = uow.rate_limits.all()
        self._limits = {(kind, target): Limits.parse(body) for kind, target, body in rows}
        self._loaded_at = time.monotonic()
        return self._limits

    def buckets(self, kind: str, principal: Any, repository: str | None,
                address: str | None) -> list[Bucket]:
        """The buckets a pull or push by `principal` on `repository` is charged to (cached
        limits: call `load` first when `stale`)."""
        limits = self._limits
        if not limits:
            return []
        found: list[Bucket] = []
        anonymous = principal is None or principal.anonymous
        own = (limits.get(("anonymous", ANONYMOUS_TARGET)) if anonymous
               else limits.get((principal.kind, principal.name)))
        if own is not None and (rate := own.rate(kind)) is not None:
            label = "anonymous clients" if anonymous else f"{principal.kind} {principal.name}"
            found.append(Bucket(f"{kind}|{_who(principal, address)}"[:KEY_LENGTH], rate,
                                own.burst_of(kind), label))
        if repository is not None:
            namespace = repository.split("/", 1)[0]
            ns = limits.get(("namespace", namespace))
            if ns is not None and (rate := ns.rate(kind)) is not None:
                key = f"{kind}|ns:{repository}|{_who(principal, address)}"[:KEY_LENGTH]
                found.append(Bucket(key, rate, ns.burst_of(kind), f"namespace {namespace}"))
        return found

    def login_buckets(self, claimed: str | None, address: str | None) -> list[Bucket]:
        """The buckets a login (a /token request) is charged to: the claimed account's own
        login limit, else the anonymous default's per address."""
        limits = self._limits
        if not limits:
            return []
        if claimed:
            kind = "robot" if claimed.startswith("robot$") else "user"
            own = limits.get((kind, claimed))
            if own is not None and (rate := own.rate("login")) is not None:
                return [Bucket(f"login|{kind}:{claimed}"[:KEY_LENGTH], rate,
                               own.burst_of("login"), f"{kind} {claimed}")]
        default = limits.get(("anonymous", ANONYMOUS_TARGET))
        if default is not None and (rate := default.rate("login")) is not None:
            return [Bucket(f"login|addr:{address or '-'}"[:KEY_LENGTH], rate,
                           default.burst_of("login"), "anonymous clients")]
        return []

    def take(self, kind: str, buckets: list[Bucket], actor: Actor,
             repository: str | None) -> Refusal | None:
        """Charge one request to every bucket; the longest wait when one of them is over."""
        now = self.clock()
        refusals: list[Refusal] = []
        with self.database.write() as uow:
            for b in buckets:
                interval = b.rate.interval
                if uow.rate_limits.charge(b.key, now, interval, interval * b.burst):
                    continue
                retry = charge(uow.rate_limits.tat(b.key), now, interval, b.burst).retry_after
                refusal = Refusal(kind, b, max(retry, 0.0))
                refusals.append(refusal)
                if uow.rate_limits.claim_notice(b.key, now, now + refusal.retry_after):
                    self._notice(uow, refusal, actor, repository)
        if random.randrange(_FORGET_EVERY) == 0:
            with self.database.write() as uow:
                uow.rate_limits.forget_idle(now)
        return max(refusals, key=lambda r: r.retry_after) if refusals else None

    @staticmethod
    def _notice(uow: Any, refusal: Refusal, actor: Actor, repository: str | None) -> None:
        """Log and audit the first refusal of a window (the bucket row says it is the first)."""
        detail = {"limit": str(refusal.bucket.rate), "burst": refusal.bucket.burst,
                  "target": refusal.bucket.target,
                  "retry_after": int(retry_header(refusal.retry_after))}
        log.warning("rate limited", extra={"kind": refusal.kind, "key": refusal.bucket.key,
                                           "repository": repository, **detail})
        uow.emit(records(RateLimited(actor=actor, repository=repository, kind=refusal.kind,
                                     detail=detail)))
