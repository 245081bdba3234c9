"""`post-push.insights`: image size insights for each pushed image (an index: its images)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..bootstrap import Registry

NAME = "insights"


class InsightsProcessor:
    """Computes the insights report of each pushed image manifest (`insights_on_push`)."""

    name = NAME

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def wants(self, event: dict[str, Any]) -> bool:
        """Image manifests and indexes (an index queues an `insights` job per image)."""
        from ..events.processors import image_or_index

        return image_or_index(event)

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The report of the pushed manifest (the same work as the `insights` job)."""
        return self.registry.insights.run(payload["repository"], payload["digest"])
