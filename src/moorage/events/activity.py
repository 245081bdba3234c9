"""The unusual-activity watcher: an outbox consumer raising UnusualActivity events (and counting
them in `moorage_alerts_total{kind}`) for mass deletes by one principal, for a pull spike of one
principal (anonymous clients by address), and for a robot used from an address it was not seen
at before. Repeated login failures from one address are
detected where they are counted (auth/service.py).

It holds the consumer's lease (one process at a time) and delivers at least once: a crash
between an alert and the cursor's move may raise that alert twice.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from ..metadata.uow import Database
from ..metrics.alerts import MASS_DELETES, PULL_SPIKE, ROBOT_NEW_ADDRESS, count_alert
from .types import Actor, UnusualActivity, records

CONSUMER = "activity"
DELETES = ("ManifestDeleted", "TagDeleted", "BlobDeleted")
ROBOT_USES = ("ManifestPushed", "ManifestPulled", "BlobPushed", "Login")
HISTORY = 100_000  # events looked back over (a primary-key range): bounded work per check
_KNOWN_MAX = 10_000  # (robot, address) pairs remembered in memory
_PULLERS_MAX = 10_000  # principals whose recent pull times are kept (the least recent go)


@dataclass(frozen=True)
class ActivityRules:
    """Thresholds (0 or False: that check is off)."""

    mass_deletes: int = 50
    window: float = 300.0
    robot_new_address: bool = True
    pull_spike: int = 0


@dataclass
class _Burst:
    """One principal's pull times within the window, and whether this burst alerted."""

    times: deque[float] = field(default_factory=deque)
    alerted: bool = False


class ActivityWatcher:
    """Consumer `activity`: looks at each event once, in order."""

    name = CONSUMER
    transactional = False

    def __init__(self, database: Database, rules: ActivityRules) -> None:
        self.database, self.rules = database, rules
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()
        # Pull times per principal within the window, in memory: the watcher holds the lease,
        # and a pull is the most frequent event (no database read per pull).
        self._pulls: OrderedDict[str, _Burst] = OrderedDict()

    def handle(self, events: list[dict[str, Any]], uow: Any) -> None:
        """Raise the alerts `events` call for."""
        for event in events:
            alert = (self._mass_delete(event) or self._pull_spike(event)
                     or self._robot_address(event))
            if alert is not None:
                with self.database.write() as write:
                    write.emit(records(alert))
                count_alert(alert.kind)

    def _mass_delete(self, event: dict[str, Any]) -> UnusualActivity | None:
        n, actor = self.rules.mass_deletes, event.get("actor")
        if not n or not actor or not _client_delete(event) or event.get("actor_kind") not in (
                "user", "robot"):
            return None
        with self.database.read() as uow:
            recent = uow.activity.recent_of(actor, DELETES, event["time"] - self.rules.window,
                                            event["id"], HISTORY)
        count = sum(1 for e in recent if _client_delete(e))
        if count != n:  # once per burst: when the count reaches the threshold
            return None
        return UnusualActivity(
            actor=Actor(actor, event.get("actor_kind"), event.get("address")),
            repository=event.get("repository"), kind=MASS_DELETES,
            detail={"deletes": count, "window_seconds": self.rules.window})

    def _pull_spike(self, event: dict[str, Any]) -> UnusualActivity | None:
        n = self.rules.pull_spike
        if not n or event["type"] != "ManifestPulled":
            return None
        actor, address = event.get("actor"), event.get("address")
        who = actor or f"anonymous@{address}"
        burst = self._pulls.pop(who, None) or _Burst()
        self._pulls[who] = burst  # the most recent last
        if len(self._pulls) > _PULLERS_MAX:
            self._pulls.popitem(last=False)
        now = float(event["time"])
        burst.times.append(now)
        while burst.times[0] < now - self.rules.window:
            burst.times.popleft()
        while len(burst.times) > n:  # beyond the threshold only "still over" matters
            burst.times.popleft()
        if len(burst.times) < n:
            burst.alerted = False  # the burst is over: the next one alerts again
            return None
        if burst.alerted:
            return None
        burst.alerted = True  # once per burst
        return UnusualActivity(
            actor=Actor(actor, event.get("actor_kind"), address),
            repository=event.get("repository"), kind=PULL_SPIKE,
            detail={"pulls": n, "window_seconds": self.rules.window})

    def _robot_address(self, event: dict[str, Any]) -> UnusualActivity | None:
        robot, address = event.get("actor"), event.get("address")
        if (not self.rules.robot_new_address or event.get("actor_kind") != "robot"
                or not robot or not address or event["type"] not in ROBOT_USES):
            return None
        if event["type"] == "Login" and (event.get("payload") or {}).get("outcome") != "success":
            return None
        key = (robot, address)
        if key in self._known:
            self._known.move_to_end(key)
            return None
        with self.database.read() as uow:
            here = uow.activity.seen(robot, "robot", address, event["id"], HISTORY)
            elsewhere = not here and uow.activity.seen(robot, "robot", None, event["id"],
                                                       HISTORY)
        self._known[key] = None
        if len(self._known) > _KNOWN_MAX:
            self._known.popitem(last=False)
        if not elsewhere:  # seen here before, or a robot's first use at all
            return None
        return UnusualActivity(actor=Actor(robot, "robot", address), kind=ROBOT_NEW_ADDRESS,
                               repository=event.get("repository"),
                               detail={"address": address, "event": event["type"]})


def _client_delete(event: dict[str, Any]) -> bool:
    """A delete a client asked for (not retention's or the collector's)."""
    return event["type"] in DELETES and (event.get("payload") or {}).get("by",
                                                                        "client") == "client"
