"""Old import path of support/backends.py, kept for tests written against it (test_gc_race.py,
test_jobs.py and tests in flight on other branches); new code imports `support.backends`."""

from support.backends import (
    Postgres,
    ScaleOutServices,
    SeaweedFS,
    migrate,
    missing_components,
    services_or_skip,
    shared_services,
    stop_shared_services,
)

__all__ = [
    "Postgres",
    "ScaleOutServices",
    "SeaweedFS",
    "migrate",
    "missing_components",
    "services_or_skip",
    "shared_services",
    "stop_shared_services",
]
