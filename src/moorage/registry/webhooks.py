"""Webhooks: subscriptions for server admins (CLI and management API alike), and the delivery
bookkeeping of the `webhook.deliver` job (claim the due heads, record each attempt, schedule
the next run).

A delivery is retried with exponential backoff (10 s, 20 s, … at most `backoff_max`) until it
is delivered, or `max_age` after it was queued it is given up (`failed`; redeliver queues it
again). A later delivery of the same webhook and repository waits for the earlier one.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..auth.authorizer import SERVER, Action, Authorizer
from ..events.webhooks import JOB_KIND, parse_events
from ..metadata.queries.webhooks import NameTaken
from ..metadata.uow import Database
from ..oci.errors import RegistryError

if TYPE_CHECKING:
    from ..auth.identity import Principal
    from ..auth.sealing import Sealer

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
BACKOFF_BASE = 10.0
_ERROR_LIMIT = 500


class WebhookNotFound(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "no such webhook"


class WebhookConflict(RegistryError):
    code, status, default_message = "DENIED", 409, "a webhook of that name exists"


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: an HTTP status (None: no answer) and an error (None: 2xx)."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def backoff(attempts: int, cap: float) -> float:
    """Wait before the next attempt after `attempts` failed ones: 10 s, 20 s, 40 s, … ≤ cap."""
    return min(cap, BACKOFF_BASE * 2 ** max(attempts - 1, 0))


def check_url(url: str) -> str:
    """An http(s) URL with a host, else a RegistryError saying so."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok, parts = False, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise RegistryError(f"webhook URL must be http:// or https:// with a host, got {url!r}")
    return url


def _public(hook: dict[str, Any]) -> dict[str, Any]:
    """A webhook as shown to admins: the secret only as whether there is one."""
    out = {k: v for k, v in hook.items() if k != "secret"}
    out["events"] = hook["events"].split(",")
    out["signed"] = bool(hook.get("secret"))
    return out


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("body", "lease_until")}


class WebhookService:
    """Admin operations (server admins only) and the job's delivery bookkeeping."""

    def __init__(self, database: Database, authorizer: Authorizer,
                 sealer: Callable[[], Sealer], timeout: float = 10.0,
                 backoff_max: float = 3600.0, max_age: float = 86400.0,
                 job_attempts: int = 5) -> None:
        self.database = database
        self.authorizer = authorizer
        self._sealer = sealer
        self.timeout = timeout
        self.backoff_max = backoff_max
        self.max_age = max_age
        self.job_attempts = job_attempts

    def _require(self, actor: Principal, doing: str) -> None:
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, doing=doing)

    # -- administration -----------------------------------------------------------------------

    def add(self, actor: Principal, namespace: str, url: str, events: str | list[str],
            secret: str | None = None, name: str | None = None) -> dict[str, Any]:
        """Subscribe `url` to the `events` of `namespace` (`*`: every namespace)."""
        self._require(actor, "add a webhook")
        if namespace != "*" and not NAMESPACE_RE.match(namespace):
            raise RegistryError(f"invalid namespace {namespace!r}: a repository's first path "
                                "component, or * for every namespace")
        check_url(url)
        try:
            wanted = parse_events(events)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        if name is None:
            name = f"{'all' if namespace == '*' else namespace[:50]}-{secrets.token_hex(3)}"
        if not NAME_RE.match(name):
            raise RegistryError(f"invalid webhook name {name!r}: lowercase letters, digits, "
                                "'.', '_', '-', at most 64")
        sealed = None
        if secret:
            from ..events.webhooks import signing_key

            try:
                signing_key(secret)
            except ValueError as exc:
                raise RegistryError(str(exc)) from None
            sealed = self._sealer().seal(secret.encode())
        values = {"name": name, "namespace": namespace, "url": url, "events": ",".join(wanted),
                  "secret": sealed, "created_at": time.time(), "created_by": actor.name}
        try:
            with self.database.write() as uow:
                uow.webhooks.add(values)
                hook = uow.webhooks.get(name)
        except NameTaken:
            raise WebhookConflict(f"a webhook named {name!r} exists already") from None
        assert hook is not None
        return _public({**hook, "pending": 0, "failed": 0})

    def list_webhooks(self, actor: Principal) -> list[dict[str, Any]]:
        """Every webhook with its pending and failed delivery counts."""
        self._require(actor, "list webhooks")
        with self.database.read() as uow:
            return [_public(h) for h in uow.webhooks.all()]

    def remove(self, actor: Principal, name: str) -> None:
        """Delete a webhook and its delivery history."""
        self._require(actor, "remove a webhook")
        with self.database.write() as uow:
            hook = uow.webhooks.get(name)
            if hook is None:
                raise WebhookNotFound(f"no webhook named {name!r}")
            uow.webhooks.remove(hook["id"])

    def deliveries(self, actor: Principal, name: str, failed_only: bool = False,
                   limit: int = 100) -> list[dict[str, Any]]:
        """A webhook's deliveries, newest first (only the given-up ones with `failed_only`)."""
        self._require(actor, "see webhook deliveries")
        if not 1 <= limit <= 1000:
            raise RegistryError("limit must be between 1 and 1000")
        with self.database.read() as uow:
            hook = uow.webhooks.get(name)
            if hook is None:
                raise WebhookNotFound(f"no webhook named {name!r}")
            rows = uow.webhooks.deliveries(hook["id"], ["failed"] if failed_only else None,
                                           limit)
        return [{**_delivery(r), "webhook": name} for r in rows]

    def redeliver(self, actor: Principal, delivery_id: int) -> dict[str, Any]:
        """Queue a failed (or delivered) delivery again, due now, and wake the sender."""
        self._require(actor, "redeliver a webhook delivery")
        if not 0 < delivery_id < 2**63:
            raise WebhookNotFound(f"no webhook delivery {delivery_id}")
        now = time.time()
        with self.database.write() as uow:
            row = uow.webhooks.delivery(delivery_id)
            if row is None:
                raise WebhookNotFound(f"no webhook delivery {delivery_id}")
            if not uow.webhooks.requeue(delivery_id, now):
                raise WebhookConflict(f"delivery {delivery_id} is {row['status']}; only failed "
                                      "or delivered ones can be sent again")
            self._wake(uow, row["webhook_id"], f"redeliver:{delivery_id}:{now:.6f}", now)
            row = uow.webhooks.delivery(delivery_id)
        assert row is not None
        return _delivery(row)

    # -- delivery (the webhook.deliver job) ---------------------------------------------------

    def target(self, webhook_id: int) -> tuple[str, str | None] | None:
        """(url, secret) of a webhook; None when it was removed."""
        with self.database.read() as uow:
            hook = uow.webhooks.get_by_id(webhook_id)
        if hook is None:
            return None
        secret = self._sealer().unseal(hook["secret"]).decode() if hook["secret"] else None
        return hook["url"], secret

    def claim_due(self, webhook_id: int, limit: int) -> list[tuple[dict[str, Any], float]]:
        """Lease up to `limit` due heads (oldest unfinished delivery of each repository) for
        sending: [(delivery, its lease)]."""
        now = time.time()
        lease = now + self.timeout + 30.0
        claimed: list[tuple[dict[str, Any], float]] = []
        with self.database.write() as uow:
            for row in uow.webhooks.heads(webhook_id):
                if len(claimed) >= limit:
                    break
                if uow.webhooks.claim(row, now, lease):
                    claimed.append((row, lease))
        return claimed

    def record(self, delivery: dict[str, Any], lease: float, outcome: Outcome) -> str | None:
        """Store an attempt's outcome: delivered, pending again after a backoff, or failed
        once the delivery is `max_age` old. The new status (None: the lease was lost)."""
        now = time.time()
        attempts = int(delivery["attempts"]) + 1  # the claim counted this attempt
        values: dict[str, Any] = {"lease_until": None, "last_status": outcome.status}
        if outcome.ok:
            values.update(status="delivered", delivered_at=now, last_error=None)
        elif now - float(delivery["queued_at"]) >= self.max_age:
            values.update(status="failed", last_error=(outcome.error or "")[:_ERROR_LIMIT])
        else:
            values.update(status="pending", last_error=(outcome.error or "")[:_ERROR_LIMIT],
                          next_attempt_at=now + backoff(attempts, self.backoff_max))
        with self.database.write() as uow:
            if not uow.webhooks.finish(delivery["id"], lease, values):
                return None
        return str(values["status"])

    def schedule_next(self, webhook_id: int, current_key: str | None) -> float | None:
        """Queue the next run for when the earliest head is due (None: nothing is pending).
        Runs due at the same second share one job."""
        with self.database.write() as uow:
            times = [float(h["next_attempt_at"] if h["status"] == "pending"
                           else h["lease_until"] or 0.0)
                     for h in uow.webhooks.heads(webhook_id)]
            if not times:
                return None
            due = min(times)
            key = f"at:{int(due)}"
            if f"webhook:{webhook_id}:{key}" == current_key:
                key = f"at:{int(due) + 1}"  # never this run's own key: it would be itself
            self._wake(uow, webhook_id, key, max(due, time.time()))
            return due

    def _wake(self, uow: Any, webhook_id: int, key: str, run_at: float) -> None:
        uow.jobs.enqueue(JOB_KIND, {"webhook": webhook_id}, f"webhook:{webhook_id}:{key}",
                         run_at, self.job_attempts, time.time())
