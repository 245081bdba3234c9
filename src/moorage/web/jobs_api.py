"""Former home of the job queue route, now web/api/jobs.py (kept for existing imports)."""

from .api.jobs import JobsAPI

__all__ = ["JobsAPI"]
