"""`webhook.deliver`: send one webhook's due deliveries (payload `webhook`: its id).

A run sends the head of each repository's queue, at most `webhook_concurrency` requests at once,
and goes on with the next head of a repository whose delivery succeeded, until nothing is due
(or its time budget is spent); then it queues the next run for when the earliest retry is due.
Requests use the standard library's http.client: one POST, no redirects, a timeout, and at most
a few KiB of the answer read.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ...events.webhooks import JOB_KIND, headers
from ...metrics.distribution import observe_webhook
from ..queue import Job
from . import Handler, TaskServices

if TYPE_CHECKING:
    from ...registry.webhooks import Outcome

KIND = JOB_KIND
_ANSWER_LIMIT = 4096
log = logging.getLogger("moorage.webhooks")


def post(url: str, body: bytes, request_headers: dict[str, str], timeout: float) -> Outcome:
    """POST `body` to `url`: a 2xx status is success, anything else (or no answer) an error."""
    import http.client  # only where deliveries are sent: not in every serving process

    from ...registry.webhooks import Outcome

    parts = urlsplit(url)
    connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                        else http.client.HTTPConnection)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=request_headers)
        response = conn.getresponse()
        answer = response.read(_ANSWER_LIMIT)
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    if 200 <= response.status < 300:
        return Outcome(response.status, None)
    text = answer.decode("utf-8", "replace").strip()[:200]
    return Outcome(response.status, f"HTTP {response.status}" + (f": {text}" if text else ""))


def make(services: TaskServices) -> Handler:
    settings = services.settings

    def run(job: Job) -> dict[str, Any]:
        webhooks = services.webhooks
        hook_id = int(job.payload["webhook"])
        target = webhooks.target(hook_id)
        if target is None:
            return {"removed": True}
        url, secret = target
        budget = time.monotonic() + max(30.0, 3 * settings.webhook_timeout)
        counts = {"delivered": 0, "retrying": 0, "failed": 0}

        def attempt(claimed: tuple[dict[str, Any], float]) -> str | None:
            delivery, lease = claimed
            body = delivery["body"].encode()
            message_id = str(delivery["event_id"])
            started = time.monotonic()
            outcome = post(url, body, headers(secret, message_id, body), settings.webhook_timeout)
            observe_webhook(time.monotonic() - started, outcome.ok)
            status = webhooks.record(delivery, lease, outcome)
            if not outcome.ok:
                log.warning("webhook delivery failed", extra={
                    "webhook": hook_id, "delivery": delivery["id"], "status": status,
                    "error": outcome.error, "seconds": round(time.monotonic() - started, 3)})
            return status

        with ThreadPoolExecutor(max_workers=settings.webhook_concurrency) as pool:
            while time.monotonic() < budget:
                claimed = webhooks.claim_due(hook_id, 4 * settings.webhook_concurrency)
                if not claimed:
                    break
                for status in pool.map(attempt, claimed):
                    key = {"delivered": "delivered", "failed": "failed"}.get(status or "",
                                                                            "retrying")
                    counts[key] += 1
        due = webhooks.schedule_next(hook_id, job.unique_key)
        return {**counts, "next": due}

    return run
