"""Every route the server answers, in one table: (method, path, action, handler).

A path is written as aiohttp writes it (`{param}` is one segment) with two /v2/ rules of the
distribution spec: `{name}` spans slashes (`library/ubuntu`), and a trailing `/` is optional.
/v2/ routes are matched in table order by the /v2/ dispatcher (web/v2/dispatch.py), so upload
paths come before blob paths; every other route goes to aiohttp's router.

The action is what the Authorizer is asked before the handler runs (/v2/ only), or a marker:
PUBLIC (no credentials), AUTHENTICATED (any valid credentials, no action), CHECKED_BY_HANDLER
(the handler authenticates and its service decides per body and resource).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from ..auth.authorizer import Action
from ..oci.errors import Unsupported
from .api.dedup import DedupAPI
from .api.distribution import DistributionAPI
from .api.insights import InsightsAPI
from .api.jobs import JobsAPI
from .api.lifecycle import LifecycleAPI
from .api.management import ManagementAPI
from .api.models import ModelsAPI
from .api.oidc import OidcAPI
from .api.ratelimits import RateLimitsAPI
from .api.scans import ScansAPI
from .api.webhooks import WebhooksAPI
from .health import Health
from .metrics import MetricsEndpoint
from .token import TokenEndpoint
from .ui import AdminPages, Pages, SsoPages
from .v2.base import Base
from .v2.blobs import Blobs
from .v2.catalog import Catalog
from .v2.delta import Delta
from .v2.manifests import Manifests
from .v2.referrers import Referrers
from .v2.tags import Tags
from .v2.uploads import Uploads

Handler = Callable[..., Awaitable[web.StreamResponse]]

PUBLIC = "public"
AUTHENTICATED = "authenticated"
CHECKED_BY_HANDLER = "checked-by-handler"
MARKERS = (PUBLIC, AUTHENTICATED, CHECKED_BY_HANDLER)
V2_PREFIX = "/v2/"


@dataclass(frozen=True)
class Route:
    """One (method, path) the server answers, what access it needs, and who answers it."""

    method: str
    path: str
    action: str  # an auth.authorizer.Action, or one of MARKERS
    handler: Handler  # an unbound method of a handler class, bound by `bind`

    @property
    def is_v2(self) -> bool:
        """Whether the /v2/ dispatcher (not aiohttp's router) serves this route."""
        return self.path.startswith(V2_PREFIX)


def _v2(method: str, path: str, action: str, handler: Handler) -> Route:
    return Route(method, V2_PREFIX + path, action, handler)


_NS = "/api/v1/namespaces/{name}"
_API = CHECKED_BY_HANDLER  # the management API: its services decide per target
_MODEL = "/api/v1/models/{repository}/{digest}"
_UI = CHECKED_BY_HANDLER  # the UI: pages read the session; services decide what it sees
# aiohttp's `{param}` is one segment, but a repository name spans slashes: routed as `.+`, the
# `…/files` route is listed (and so matched) before the card's.
_ROUTER_PARAMS = {"{repository}": "{repository:.+}"}

ROUTES: tuple[Route, ...] = (
    # -- /v2/: the OCI Distribution API (order matters: uploads before blobs) ----------------
    _v2("GET", "", AUTHENTICATED, Base.ping),
    _v2("HEAD", "", AUTHENTICATED, Base.ping),
    _v2("GET", "_catalog", Action.CATALOG, Catalog.catalog),
    # the delta push/pull extension (web/v2/delta.py), advertised by the OCI discovery document
    _v2("GET", "_oci/ext/discover", AUTHENTICATED, Delta.discover),
    _v2("POST", "{name}/moorage/chunks/missing", Action.PUSH, Delta.missing),
    _v2("POST", "{name}/moorage/chunks/fetch", Action.PULL, Delta.fetch),
    _v2("POST", "{name}/moorage/chunks", Action.PUSH, Delta.store),
    _v2("PUT", "{name}/moorage/recipes/{digest}", Action.PUSH, Delta.commit),
    _v2("GET", "{name}/moorage/recipes/{digest}", Action.PULL, Delta.recipe),
    _v2("GET", "{name}/tags/list", Action.PULL, Tags.tag_list),
    _v2("GET", "{name}/manifests/{reference}", Action.PULL, Manifests.get_manifest),
    _v2("HEAD", "{name}/manifests/{reference}", Action.PULL, Manifests.get_manifest),
    _v2("PUT", "{name}/manifests/{reference}", Action.PUSH, Manifests.put_manifest),
    _v2("DELETE", "{name}/manifests/{reference}", Action.DELETE, Manifests.delete_manifest),
    _v2("POST", "{name}/blobs/uploads/", Action.PUSH, Uploads.start_upload),
    _v2("GET", "{name}/blobs/uploads/{upload}", Action.PUSH, Uploads.upload_status),
    _v2("PATCH", "{name}/blobs/uploads/{upload}", Action.PUSH, Uploads.patch_upload),
    _v2("PUT", "{name}/blobs/uploads/{upload}", Action.PUSH, Uploads.finish_upload),
    _v2("DELETE", "{name}/blobs/uploads/{upload}", Action.PUSH, Uploads.cancel_upload),
    _v2("GET", "{name}/blobs/{digest}", Action.PULL, Blobs.get_blob),
    _v2("HEAD", "{name}/blobs/{digest}", Action.PULL, Blobs.get_blob),
    _v2("DELETE", "{name}/blobs/{digest}", Action.DELETE, Blobs.delete_blob),
    _v2("GET", "{name}/referrers/{digest}", Action.PULL, Referrers.list_referrers),
    # -- tokens: credentials in, a token for the scopes the Authorizer grants out ------------
    Route("GET", "/token", CHECKED_BY_HANDLER, TokenEndpoint.get),
    Route("POST", "/token", CHECKED_BY_HANDLER, TokenEndpoint.post),
    # -- /api/v1: the management API, described by openapi.json ------------------------------
    Route("GET", "/api/v1/users", _API, ManagementAPI.list_users),
    Route("POST", "/api/v1/users", _API, ManagementAPI.add_user),
    Route("PATCH", "/api/v1/users/{name}", _API, ManagementAPI.update_user),
    Route("GET", "/api/v1/namespaces", _API, ManagementAPI.list_namespaces),
    Route("POST", "/api/v1/namespaces", _API, ManagementAPI.add_namespace),
    Route("GET", _NS, _API, ManagementAPI.get_namespace),
    Route("PATCH", _NS, _API, ManagementAPI.update_namespace),
    Route("PUT", _NS + "/members/{user}", _API, ManagementAPI.put_member),
    Route("DELETE", _NS + "/members/{user}", _API, ManagementAPI.delete_member),
    Route("GET", "/api/v1/robots", _API, ManagementAPI.list_robots),
    Route("POST", "/api/v1/robots", _API, ManagementAPI.add_robot),
    Route("DELETE", "/api/v1/robots/{name}", _API, ManagementAPI.revoke_robot),
    Route("GET", "/api/v1/audit", _API, ManagementAPI.audit),
    Route("GET", "/api/v1/oidc/issuers", _API, OidcAPI.list_issuers),
    Route("GET", "/api/v1/oidc/issuers/{id}", _API, OidcAPI.get_issuer),
    Route("DELETE", "/api/v1/oidc/issuers/{id}", _API, OidcAPI.remove_issuer),
    Route("POST", "/api/v1/oidc/rules", _API, OidcAPI.add_rule),
    Route("DELETE", "/api/v1/oidc/rules/{id}", _API, OidcAPI.remove_rule),
    Route("GET", "/api/v1/openapi.json", PUBLIC, ManagementAPI.openapi),
    Route("GET", _NS + "/immutability", _API, LifecycleAPI.list_immutability),
    Route("POST", _NS + "/immutability", _API, LifecycleAPI.add_immutability),
    Route("DELETE", _NS + "/immutability/{pattern}", _API, LifecycleAPI.remove_immutability),
    Route("GET", _NS + "/quota", _API, LifecycleAPI.usage),
    Route("GET", _NS + "/dedup", _API, DedupAPI.namespace_dedup),
    Route("PUT", _NS + "/quota", _API, LifecycleAPI.set_quota),
    Route("DELETE", _NS + "/quota", _API, LifecycleAPI.remove_quota),
    Route("GET", _NS + "/retention", _API, LifecycleAPI.list_policies),
    Route("PUT", _NS + "/retention", _API, LifecycleAPI.set_policy),
    Route("DELETE", _NS + "/retention", _API, LifecycleAPI.remove_policy),
    Route("POST", _NS + "/retention/plan", _API, LifecycleAPI.plan),
    Route("POST", _NS + "/retention/apply", _API, LifecycleAPI.apply),
    Route("GET", "/api/v1/tags/deleted", _API, LifecycleAPI.deleted_tags),
    Route("POST", "/api/v1/tags/restore", _API, LifecycleAPI.restore_tag),
    Route("GET", "/api/v1/gc", _API, LifecycleAPI.gc_runs),
    Route("POST", "/api/v1/gc", _API, LifecycleAPI.run_gc),
    Route("GET", "/api/v1/jobs", _API, JobsAPI.list_jobs),
    Route("GET", "/api/v1/webhooks", _API, WebhooksAPI.list_webhooks),
    Route("POST", "/api/v1/webhooks", _API, WebhooksAPI.add_webhook),
    Route("DELETE", "/api/v1/webhooks/{name}", _API, WebhooksAPI.remove_webhook),
    Route("GET", "/api/v1/webhooks/{name}/deliveries", _API, WebhooksAPI.list_deliveries),
    Route("POST", "/api/v1/deliveries/{id}/redeliver", _API, WebhooksAPI.redeliver),
    Route("GET", "/api/v1/ratelimits", _API, RateLimitsAPI.list_limits),
    Route("PUT", "/api/v1/ratelimits/{target}", _API, RateLimitsAPI.set_limit),
    Route("DELETE", "/api/v1/ratelimits/{target}", _API, RateLimitsAPI.remove_limit),
    Route("GET", "/api/v1/upstreams", _API, DistributionAPI.list_upstreams),
    Route("POST", "/api/v1/upstreams", _API, DistributionAPI.add_upstream),
    Route("DELETE", "/api/v1/upstreams/{name}", _API, DistributionAPI.remove_upstream),
    Route("GET", "/api/v1/caches", _API, DistributionAPI.list_caches),
    Route("POST", "/api/v1/caches", _API, DistributionAPI.add_cache),
    Route("DELETE", "/api/v1/caches/{name}", _API, DistributionAPI.remove_cache),
    Route("GET", "/api/v1/models", _API, ModelsAPI.search_models),
    Route("GET", _MODEL + "/files", _API, ModelsAPI.model_files),  # before the card: see below
    Route("GET", _MODEL, _API, ModelsAPI.get_model),
    Route("GET", "/api/v1/repositories/{name}/manifests/{digest}/scan", _API,
          ScansAPI.scan_report),
    # -- the web UI: HTML pages for browsers (a session cookie; CSRF token on every POST) ----
    Route("GET", "/", PUBLIC, Pages.root),
    Route("GET", "/ui/static/{file}", PUBLIC, Pages.static),
    Route("GET", "/ui/", _UI, Pages.home),
    Route("GET", "/ui/login", _UI, Pages.login_form),
    Route("POST", "/ui/login", _UI, Pages.login),
    Route("POST", "/ui/logout", _UI, Pages.logout),
    Route("GET", "/ui/sso", _UI, SsoPages.start),
    Route("GET", "/ui/sso/callback", _UI, SsoPages.callback),
    Route("GET", "/ui/repository", _UI, Pages.repository),
    Route("GET", "/ui/manifest", _UI, Pages.manifest),
    Route("POST", "/ui/manifest/insights", _UI, Pages.queue_insights),
    Route("GET", "/ui/admin", _UI, AdminPages.overview),
    Route("GET", "/ui/admin/namespace", _UI, AdminPages.namespace),
    Route("POST", "/ui/admin/namespace/{edit}", _UI, AdminPages.edit_namespace),
    Route("GET", "/ui/admin/robots", _UI, AdminPages.robots),
    Route("POST", "/ui/admin/robots", _UI, AdminPages.create_robot),
    Route("POST", "/ui/admin/robots/revoke", _UI, AdminPages.revoke_robot),
    Route("GET", "/ui/admin/audit", _UI, AdminPages.audit),
    Route("GET", "/api/v1/insights/{repository}/{digest}", _API, InsightsAPI.get_insights),
    # -- operations: health checks and Prometheus metrics -------------------------------------
    Route("GET", "/metrics", PUBLIC, MetricsEndpoint.scrape),
    Route("GET", "/healthz", PUBLIC, Health.live),
    Route("HEAD", "/healthz", PUBLIC, Health.live),
    Route("GET", "/readyz", PUBLIC, Health.ready),
    Route("HEAD", "/readyz", PUBLIC, Health.ready),
)


def router_path(route: Route) -> str:
    """The path as aiohttp's router is given it (repository names and digests spelled out)."""
    path = route.path
    if path.startswith(("/api/v1/models/", "/api/v1/insights/")):
        for param, pattern in _ROUTER_PARAMS.items():
            path = path.replace(param, pattern)
    # A repository name spans slashes (`team/app`), as in /v2/.
    return path.replace("/repositories/{name}/", "/repositories/{name:.+}/")


def _owns(owner: object, handler: Handler) -> bool:
    return getattr(type(owner), handler.__name__, None) is handler


def bind(handler: Handler, owners: Iterable[object]) -> Handler:
    """`handler` bound to the one of `owners` whose class defines it."""
    for owner in owners:
        if _owns(owner, handler):
            bound: Handler = getattr(owner, handler.__name__)
            return bound
    raise LookupError(f"no handler object for {handler.__qualname__}")


def bind_all(routes: Iterable[Route], owners: Iterable[object]) -> dict[Route, Handler]:
    """Every route's handler bound to its object (a missing one fails at startup)."""
    owners = list(owners)
    return {route: bind(route.handler, owners) for route in routes}


def routes_of(owner: object) -> list[tuple[str, str, Handler]]:
    """(method, path, bound handler) of the routes `owner`'s class answers, in table order."""
    return [(r.method, r.path, bind(r.handler, [owner])) for r in ROUTES if _owns(owner, r.handler)]


def _pattern(path: str) -> re.Pattern[str]:
    optional_slash = path.endswith("/")
    parts = re.split(r"\{(\w+)\}", path.rstrip("/") if optional_slash else path)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>{'.+' if part == 'name' else '[^/]+'})"
        for i, part in enumerate(parts)
    )
    return re.compile(regex + ("/?" if optional_slash else ""))


class V2Table:
    """The /v2/ routes compiled for matching: the first path that matches decides."""

    def __init__(self, routes: Iterable[Route]) -> None:
        by_path: dict[str, dict[str, Route]] = {}
        for route in routes:
            if route.is_v2:
                by_path.setdefault(route.path, {})[route.method] = route
        self.paths = [(_pattern(path), methods) for path, methods in by_path.items()]

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route and path parameters for a request; None if no path matches (404);
        UNSUPPORTED (405, with `Allow`) if the path matches but the method does not."""
        for pattern, methods in self.paths:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            route = methods.get(method)
            if route is None:
                raise Unsupported(f"{method} is not allowed here",
                                  headers={"Allow": ", ".join(methods)})
            return route, m.groupdict()
        return None
