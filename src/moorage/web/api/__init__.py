"""The management API under /api/v1/ (accounts, namespaces, robots, audit; lifecycle; jobs;
webhooks; models; scan reports; dedup)."""

from .common import audited_denials, json_response
from .dedup import DedupAPI
from .jobs import JobsAPI
from .lifecycle import LifecycleAPI
from .management import OPENAPI_PATH, ManagementAPI
from .models import ModelsAPI
from .scans import ScansAPI
from .webhooks import WebhooksAPI

__all__ = ["OPENAPI_PATH", "DedupAPI", "JobsAPI", "LifecycleAPI", "ManagementAPI", "ModelsAPI", "ScansAPI",
           "WebhooksAPI",
           "audited_denials", "json_response"]
