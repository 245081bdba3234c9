"""Former home of the lifecycle routes, now web/api/lifecycle.py (kept for existing imports)."""

from .api.lifecycle import LifecycleAPI

__all__ = ["LifecycleAPI"]
