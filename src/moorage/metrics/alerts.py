"""Counting unusual activity (`moorage_alerts_total{kind}`) from the services that detect it."""

from __future__ import annotations

LOGIN_FAILURES = "login_failures"
MASS_DELETES = "mass_deletes"
ROBOT_NEW_ADDRESS = "robot_new_address"
PULL_SPIKE = "pull_spike"


def count_alert(kind: str) -> None:
    """Count one alert of `kind` in this process's metrics."""
    from .instruments import instruments  # only once something unusual happened: CLIs too

    instruments().alerts.labels(kind).inc()
