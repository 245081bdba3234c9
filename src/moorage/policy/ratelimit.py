"""Rate limits: rates (`600/min`), the limits of one target, and the GCRA arithmetic of a bucket.

A bucket is one number, its theoretical arrival time (TAT): when the bucket would be empty again
at the configured rate. A request is let through when, charged one emission interval, the TAT
stays within `burst` intervals of now (GCRA, equivalent to a token bucket of `burst` tokens
refilled at the rate). Pure: the clock is passed in; the database applies the same rule in one
conditional statement (metadata/queries/rate_limits.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..oci.errors import RegistryError

KINDS = ("pull", "push", "login")
TARGET_KINDS = ("user", "robot", "namespace", "anonymous")
ANONYMOUS_TARGET = "*"
UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^([1-9][0-9]{0,8})/(s|sec|min|m|h|hour)$")
MAX_BURST = 1_000_000


class InvalidRate(RegistryError):
    """A rate or burst that cannot be a limit."""


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` requests per `period` seconds."""

    count: int
    period: float

    @staticmethod
    def parse(text: str) -> Rate:
        """A rate from `N/s`, `N/min` or `N/h` (N a whole number from 1)."""
        found = _RATE.match(text.strip().lower())
        if found is None:
            raise InvalidRate(f"invalid rate {text!r}: write N/s, N/min or N/h with N >= 1 "
                              "(e.g. 600/min)")
        return Rate(int(found.group(1)), UNITS[found.group(2)])

    @property
    def interval(self) -> float:
        """Seconds one request costs."""
        return self.period / self.count

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}[self.period]
        return f"{self.count}/{unit}"


@dataclass(frozen=True, slots=True)
class Limits:
    """The rates of one target (None: that kind is not limited) and its burst override."""

    pull: Rate | None = None
    push: Rate | None = None
    login: Rate | None = None
    burst: int | None = None

    def rate(self, kind: str) -> Rate | None:
        """The rate of `kind` (pull, push or login)."""
        rate: Rate | None = getattr(self, kind)
        return rate

    def burst_of(self, kind: str) -> int:
        """How many `kind` requests may come at once (the rate's count unless overridden)."""
        rate = self.rate(kind)
        return self.burst or (rate.count if rate else 1)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (rates as `N/unit` strings)."""
        out: dict[str, Any] = {k: (str(r) if (r := self.rate(k)) else None) for k in KINDS}
        out["burst"] = self.burst
        return out

    @staticmethod
    def parse(body: dict[str, Any]) -> Limits:
        """Limits from their JSON form; InvalidRate says what is wrong."""
        rates: dict[str, Rate | None] = {}
        for kind in KINDS:
            value = body.get(kind)
            if value is not None and not isinstance(value, str):
                raise InvalidRate(f"{kind!r} is a rate string such as 600/min")
            rates[kind] = Rate.parse(value) if value else None
        burst = body.get("burst")
        if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int)
                                  or not 1 <= burst <= MAX_BURST):
            raise InvalidRate(f"burst is a whole number from 1 to {MAX_BURST}")
        if not any(rates.values()):
            raise InvalidRate("give at least one of --pull, --push, --login")
        return Limits(rates["pull"], rates["push"], rates["login"], burst)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of charging one request to a bucket."""

    allowed: bool
    tat: float  # the bucket's TAT after the request (unchanged when refused)
    retry_after: float = 0.0  # seconds until a request would pass (refused only)


def charge(tat: float | None, now: float, interval: float, burst: int) -> Decision:
    """Charge one request of `interval` seconds to a bucket whose TAT is `tat` (None: empty)."""
    new_tat = max(tat if tat is not None else now, now) + interval
    if new_tat - now <= interval * burst + 1e-9:
        return Decision(True, new_tat)
    return Decision(False, tat if tat is not None else now, new_tat - interval * burst - now)


def retry_header(seconds: float) -> str:
    """The `Retry-After` value of a wait: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds - 1e-9)))
