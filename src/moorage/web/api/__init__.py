"""The management API under /api/v1/ (accounts, namespaces, robots, audit; lifecycle; jobs;
webhooks; models; scan reports; rate limits)."""

from .common import audited_denials, json_response
from .jobs import JobsAPI
from .lifecycle import LifecycleAPI
from .management import OPENAPI_PATH, ManagementAPI
from .models import ModelsAPI
from .ratelimits import RateLimitsAPI
from .scans import ScansAPI
from .webhooks import WebhooksAPI

__all__ = ["OPENAPI_PATH", "JobsAPI", "LifecycleAPI", "ManagementAPI", "ModelsAPI", "RateLimitsAPI",
           "ScansAPI",
           "WebhooksAPI",
           "audited_denials", "json_response"]
