"""Counting scans (`moorage_scans_total{kind,outcome}`) and pull-policy denials
(`moorage_pull_denials_total{rule,dry_run}`) from the services that make them."""

from __future__ import annotations


def count_scan(kind: str, outcome: str) -> None:
    """Count one finished scan of `kind` (image, model, index, other) with its status."""
    from .instruments import instruments  # only once a scan finished: CLIs and jobs too

    instruments().scans.labels(kind, outcome).inc()


def count_pull_denial(rule: str, dry_run: bool) -> None:
    """Count one pull a policy rule denied (or would have denied, in a dry run)."""
    from .instruments import instruments

    instruments().pull_denials.labels(rule, "true" if dry_run else "false").inc()
