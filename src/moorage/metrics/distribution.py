"""Counting the distribution features from where they happen: cache hits, misses and stale
answers, upstream errors, webhook deliveries (this process's instruments; replication's
counts are read from its runs at scrape time, gauges.py)."""

from __future__ import annotations

HIT, MISS, STALE = "hit", "miss", "stale"


def count_cache(cache: str, result: str) -> None:
    """One cache answer: hit (stored, fresh), miss (fetched upstream) or stale (the upstream
    failed and the stored copy was served)."""
    from .instruments import instruments

    instruments().cache_requests.labels(cache, result).inc()


def count_upstream_error(cache: str, status: int, code: str | None) -> None:
    """An upstream request of a cache that failed (status 0: no answer)."""
    from .instruments import instruments

    instruments().upstream_errors.labels(cache, str(status), code or "").inc()


def observe_webhook(seconds: float, ok: bool) -> None:
    """One webhook delivery attempt and how long it took."""
    from .instruments import instruments

    m = instruments()
    m.webhook_delivery.observe(seconds)
    if not ok:
        m.webhook_failures.inc()
