"""src/moorage/web/openapi.json describes exactly the management API the server routes.

The routes come from three places that must agree: the route lists the handlers declare
(ManagementAPI.routes(), LifecycleAPI.routes(), JobsAPI.routes(), WebhooksAPI.routes(),
ModelsAPI.routes(), ScansAPI.routes(), InsightsAPI.routes(), OidcAPI.routes(),
RateLimitsAPI.routes()), the router of a real application built by make_app(), and a running
server. The document covers /api/v1/... and /metrics; the registry
API (/v2/), /token and the health checks are outside it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.http import call, describe

from moorage.web.api import (
    OPENAPI_PATH,
    DedupAPI,
    DistributionAPI,
    InsightsAPI,
    JobsAPI,
    LifecycleAPI,
    ManagementAPI,
    ModelsAPI,
    OidcAPI,
    RateLimitsAPI,
    ScansAPI,
    WebhooksAPI,
)
from moorage.web.metrics import MetricsEndpoint

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
SOURCE = Path(__file__).resolve().parents[2] / "src" / "moorage" / "web" / "openapi.json"


def documented(doc) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in item if m in METHODS}


def declared() -> set[tuple[str, str]]:
    """What the handler classes say they route."""
    management = ManagementAPI(None, None, None, None)
    routes = [*management.routes(), *LifecycleAPI(None, None, None, None, management).routes(),
              *JobsAPI(None, management).routes(), *WebhooksAPI(None, management).routes(),
              *ModelsAPI(None, management).routes(),
              *ScansAPI(None, management).routes(),
              *InsightsAPI(None, management).routes(),
              *OidcAPI(None, management).routes(),
              *RateLimitsAPI(None, management).routes(),
              *DistributionAPI(None, None, management).routes(),
              *DedupAPI(None, management).routes(),
              *MetricsEndpoint(None).routes()]
    return {(m.upper(), path) for m, path, _h in routes}


def in_document_scope(path: str) -> bool:
    return path.startswith("/api/") or path == "/metrics"


@pytest.fixture(scope="module")
def doc():
    return json.loads(SOURCE.read_text())


@pytest.fixture(scope="module")
def router_routes(tmp_path_factory) -> set[tuple[str, str]]:
    """(method, path) of the router of a real application (SQLite in a temporary data dir)."""
    from moorage.config import Settings
    from moorage.server import prepare
    from moorage.web.app import make_app

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("router") / "data", admin_password="router-test-password"
    )
    prepare(settings)
    app = make_app(settings)
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and path and in_document_scope(path):
            out.add((route.method, path))
    return out


def test_the_served_file_is_the_source_file(doc):
    assert OPENAPI_PATH.resolve() == SOURCE or json.loads(OPENAPI_PATH.read_text()) == doc
    assert doc["openapi"].startswith("3."), doc["openapi"]


def test_declared_routes_are_the_routers(router_routes):
    assert declared() == router_routes, {
        "declared, not routed": sorted(declared() - router_routes),
        "routed, not declared": sorted(router_routes - declared()),
    }


def test_every_route_is_documented(doc, router_routes):
    missing = (router_routes | declared()) - documented(doc)
    assert not missing, f"routes missing from openapi.json: {sorted(missing)}"


def test_every_documented_operation_is_routed(doc, router_routes):
    extra = documented(doc) - (router_routes & declared())
    assert not extra, f"documented but not routed: {sorted(extra)}"


def test_path_parameters_are_declared(doc):
    problems = []
    for path, item in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, op in item.items():
            if method not in METHODS:
                continue
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            have = {p["name"] for p in params if p.get("in") == "path"}
            if have != names:
                problems.append(f"{method.upper()} {path}: declares {have}, needs {names}")
            if not op.get("responses"):
                problems.append(f"{method.upper()} {path}: no responses")
    assert not problems, problems


def test_running_server_serves_the_document_and_every_operation(world, doc):
    """Without credentials every documented operation answers 401 (200 where the document
    says `security: []`); with the admin's, none is an unknown endpoint or method."""
    reg = world.reg
    r = call("GET", f"{reg.url}/api/v1/openapi.json")
    assert r.status_code == 200, describe(r)
    assert r.json() == doc
    problems = []
    for method, path in sorted(documented(doc)):
        url = reg.url + re.sub(r"\{\w+\}", "x", path)
        op = doc["paths"][path][method.lower()]
        public = op.get("security", doc.get("security")) == []
        body = {} if method in ("POST", "PUT", "PATCH") else None
        if method in ("POST", "PUT", "PATCH", "DELETE") and not public:
            r = call(method, url, json=body)
            if r.status_code != 401:
                problems.append(f"{method} {path} without credentials: {describe(r)}")
        elif not public:
            r = call(method, url)
            if r.status_code != 401:
                problems.append(f"{method} {path} without credentials: {describe(r)}")
        else:
            r = call(method, url)
            if r.status_code != 200:
                problems.append(f"{method} {path} (public): {describe(r)}")
        if method == "GET" or method == "DELETE" and path.endswith("{pattern}"):
            # (no state-changing call with the admin's credentials, apart from a harmless one)
            r = call(method, url, auth=world.admin)
            if r.status_code in (405, 501) or (r.status_code == 404 and "endpoint" in r.text):
                problems.append(f"{method} {path} not routed: {describe(r)}")
    assert not problems, "\n".join(problems)


def test_documented_error_statuses_of_the_access_control_operations(doc):
    """The statuses these operations answer with (this suite sees each of them) are in the
    document: the success status, 400 where a body or query is parsed, 409 on duplicates."""
    expected = {
        ("POST", "/api/v1/users"): {"201", "400", "409"},
        ("PATCH", "/api/v1/users/{name}"): {"200", "400", "404"},
        ("POST", "/api/v1/namespaces"): {"201", "400", "409"},
        ("PATCH", "/api/v1/namespaces/{name}"): {"200", "400", "404"},
        ("PUT", "/api/v1/namespaces/{name}/members/{user}"): {"200", "400", "404"},
        ("DELETE", "/api/v1/namespaces/{name}/members/{user}"): {"204", "404"},
        ("POST", "/api/v1/robots"): {"201", "400", "409"},
        ("DELETE", "/api/v1/robots/{name}"): {"204", "404"},
        ("GET", "/api/v1/audit"): {"200", "400"},
    }
    problems = []
    for (method, path), statuses in expected.items():
        have = set(doc["paths"][path][method.lower()]["responses"])
        if not statuses <= have:
            problems.append(
                f"{method} {path}: documents {sorted(have)}, not {sorted(statuses - have)}"
            )
    assert not problems, "\n".join(problems)
