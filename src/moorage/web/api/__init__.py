"""The management API under /api/v1/ (accounts, namespaces, robots, audit; lifecycle; jobs;
webhooks; upstreams and caches; models; scan reports; size insights; OIDC issuers; rate
limits; dedup)."""

from .common import audited_denials, json_response
from .dedup import DedupAPI
from .distribution import DistributionAPI
from .insights import InsightsAPI
from .jobs import JobsAPI
from .lifecycle import LifecycleAPI
from .management import OPENAPI_PATH, ManagementAPI
from .models import ModelsAPI
from .oidc import OidcAPI
from .ratelimits import RateLimitsAPI
from .scans import ScansAPI
from .webhooks import WebhooksAPI

__all__ = ["OPENAPI_PATH", "DedupAPI", "DistributionAPI", "InsightsAPI", "JobsAPI",
           "LifecycleAPI", "ManagementAPI", "ModelsAPI", "OidcAPI", "RateLimitsAPI", "ScansAPI",
           "WebhooksAPI",
           "audited_denials", "json_response"]
