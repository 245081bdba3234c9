"""The instruments every worker updates (requests, bytes, uploads in flight, pushes and pulls per
repository, logins, tokens, cache answers, upstream errors, webhook deliveries), created once
per process."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge, Histogram, values

from . import files

# Seconds: quick API answers up to long blob transfers.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0)


@dataclass(frozen=True)
class Instruments:
    """This process's metric objects (in multiprocess mode, backed by files in the metrics dir)."""

    requests: Counter
    duration: Histogram
    bytes_received: Counter
    bytes_sent: Counter
    uploads_in_flight: Gauge
    pushes: Counter
    pulls: Counter
    login_failures: Counter
    tokens_issued: Counter
    alerts: Counter
    ratelimited: Counter
    scans: Counter
    pull_denials: Counter
    cache_requests: Counter
    upstream_errors: Counter
    webhook_delivery: Histogram
    webhook_failures: Counter


@cache
def instruments() -> Instruments:
    """The process's instruments (created on first use, in the worker, never before a fork)."""
    if files.directory() is not None:
        # The value class is chosen when prometheus-client is imported: choose it again in
        # case that happened before the server set the directory.
        values.ValueClass = values.get_value_class()
    return Instruments(
        requests=Counter("moorage_http_requests", "HTTP requests answered",
                         ["route", "method", "status"]),
        duration=Histogram("moorage_http_request_duration_seconds",
                           "Time from request to the end of the response",
                           ["route", "method"], buckets=DURATION_BUCKETS),
        bytes_received=Counter("moorage_http_bytes_received",
                               "Blob upload bytes received"),
        bytes_sent=Counter("moorage_http_bytes_sent", "Blob download bytes sent"),
        uploads_in_flight=Gauge("moorage_uploads_in_flight",
                                "Blob upload requests being received now",
                                multiprocess_mode="livesum"),
        pushes=Counter("moorage_repository_pushes", "Manifests pushed, per repository",
                       ["repository"]),
        pulls=Counter("moorage_repository_pulls", "Manifests pulled, per repository",
                      ["repository"]),
        login_failures=Counter("moorage_login_failures", "Refused logins (password or secret)"),
        tokens_issued=Counter("moorage_tokens_issued", "Bearer tokens issued by /token"),
        alerts=Counter("moorage_alerts", "Unusual activity detected", ["kind"]),
        ratelimited=Counter("moorage_ratelimited", "Requests refused by a rate limit (429)",
                            ["kind"]),
        scans=Counter("moorage_scans", "Scans finished, by kind of content and outcome",
                      ["kind", "outcome"]),
        pull_denials=Counter("moorage_pull_denials",
                             "Pulls a pull policy denied (or would have, in a dry run), by rule",
                             ["rule", "dry_run"]),
        cache_requests=Counter("moorage_cache_requests",
                               "Pull-through cache answers: hit, miss (fetched) or stale",
                               ["cache", "result"]),
        upstream_errors=Counter("moorage_upstream_errors",
                                "Failed upstream requests of a cache, by status and code "
                                "(status 0: no answer)", ["cache", "status", "code"]),
        webhook_delivery=Histogram("moorage_webhook_delivery_seconds",
                                   "Time a webhook delivery attempt took",
                                   buckets=DURATION_BUCKETS),
        webhook_failures=Counter("moorage_webhook_delivery_failures",
                                 "Webhook delivery attempts that failed"),
    )


# Seconds: a quota recount up to a long GC or replication run.
JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class JobInstruments:
    """The job runner's metric objects (any process that runs jobs: workers, `moorage worker`)."""

    runs: Counter
    duration: Histogram


@cache
def job_instruments() -> JobInstruments:
    """The process's job instruments (created on first use, never before a fork)."""
    instruments()  # chooses the value class (multiprocess files or in-process) first
    return JobInstruments(
        runs=Counter("moorage_job_runs", "Job attempts finished, by kind and outcome (done; "
                     "retry: failed, queued again; failed: no attempt left; lost: the lease "
                     "was another worker's)", ["kind", "outcome"]),
        duration=Histogram("moorage_job_duration_seconds", "Time a job attempt ran",
                           ["kind"], buckets=JOB_BUCKETS),
    )
