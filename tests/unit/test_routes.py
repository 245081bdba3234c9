"""The route table (web/routes.py) is complete and consistent: every route names the access it
needs, no two collide, the /api/v1 routes are exactly openapi.json's, the /v2/ routes answer
every endpoint of the distribution spec, and a real application serves each route of it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from moorage.auth.authorizer import Action
from moorage.bootstrap import Registry
from moorage.config import Settings
from moorage.oci.errors import Unsupported
from moorage.web.api import OPENAPI_PATH
from moorage.web.app import make_app
from moorage.web.routes import (
    AUTHENTICATED,
    CHECKED_BY_HANDLER,
    PUBLIC,
    ROUTES,
    Route,
    V2Table,
)
from moorage.web.v2.base import Base
from moorage.web.v2.blobs import Blobs
from moorage.web.v2.catalog import Catalog
from moorage.web.v2.delta import Delta
from moorage.web.v2.manifests import Manifests
from moorage.web.v2.referrers import Referrers
from moorage.web.v2.tags import Tags
from moorage.web.v2.uploads import Uploads

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
DIGEST = "sha256:" + "a" * 64
UPLOAD = "0d6f1b3c-5a2e-4c8a-9f00-123456789abc"
NAME = "team/sub/app"  # a name with slashes, as the spec allows


def test_every_route_names_an_action_or_a_marker() -> None:
    allowed = {*Action, PUBLIC, AUTHENTICATED, CHECKED_BY_HANDLER}
    unnamed = [(r.method, r.path, r.action) for r in ROUTES if r.action not in allowed]
    assert not unnamed, unnamed


def test_v2_routes_ask_the_authorizer_a_repository_action_or_authenticate() -> None:
    """Nothing under /v2/ is public or left to the handler: the dispatcher checks it all."""
    v2 = {Action.PULL, Action.PUSH, Action.DELETE, Action.CATALOG, AUTHENTICATED}
    wrong = [(r.method, r.path, r.action) for r in ROUTES if r.is_v2 and r.action not in v2]
    assert not wrong, wrong


def test_no_two_routes_collide() -> None:
    seen: dict[tuple[str, str], Route] = {}
    duplicates = []
    for route in ROUTES:
        key = (route.method, route.path.rstrip("/"))
        if key in seen:
            duplicates.append(key)
        seen[key] = route
    assert not duplicates, duplicates


def test_only_reads_and_operations_are_public() -> None:
    public = sorted((r.method, r.path) for r in ROUTES if r.action == PUBLIC)
    assert public == [
        ("GET", "/"), ("GET", "/api/v1/openapi.json"), ("GET", "/healthz"), ("GET", "/metrics"),
        ("GET", "/readyz"), ("GET", "/ui/static/{file}"), ("HEAD", "/healthz"),
        ("HEAD", "/readyz"),
    ]


def _documented() -> set[tuple[str, str]]:
    doc = json.loads(Path(OPENAPI_PATH).read_text())
    return {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m in METHODS}


def test_api_routes_are_exactly_the_openapi_document() -> None:
    in_scope = {(r.method, r.path) for r in ROUTES
                if r.path.startswith("/api/") or r.path == "/metrics"}
    documented = _documented()
    assert in_scope == documented, {
        "routed, not documented": sorted(in_scope - documented),
        "documented, not routed": sorted(documented - in_scope),
    }


# (endpoint id of oci-spec-summary.md, method, path, the handler the table must send it to).
# end-4b/4c/11 (POST ?digest=, ?digest-algorithm=, ?mount=), end-7b (PUT ?tag=), end-8b (?n=,
# ?last=) and end-12b (?artifactType=) are query variants of the route of end-4a/7/8a/12a.
SPEC_ENDPOINTS = [
    ("end-1", "GET", "/v2/", Base.ping),
    ("end-1", "HEAD", "/v2/", Base.ping),
    ("end-1", "GET", "/v2", Base.ping),
    ("end-2", "GET", f"/v2/{NAME}/blobs/{DIGEST}", Blobs.get_blob),
    ("end-2", "HEAD", f"/v2/{NAME}/blobs/{DIGEST}", Blobs.get_blob),
    ("end-3", "GET", f"/v2/{NAME}/manifests/latest", Manifests.get_manifest),
    ("end-3", "HEAD", f"/v2/{NAME}/manifests/{DIGEST}", Manifests.get_manifest),
    ("end-4a", "POST", f"/v2/{NAME}/blobs/uploads/", Uploads.start_upload),
    ("end-4a", "POST", f"/v2/{NAME}/blobs/uploads", Uploads.start_upload),
    ("end-5", "PATCH", f"/v2/{NAME}/blobs/uploads/{UPLOAD}", Uploads.patch_upload),
    ("end-6", "PUT", f"/v2/{NAME}/blobs/uploads/{UPLOAD}", Uploads.finish_upload),
    ("end-7", "PUT", f"/v2/{NAME}/manifests/v1.0", Manifests.put_manifest),
    ("end-8a", "GET", f"/v2/{NAME}/tags/list", Tags.tag_list),
    ("end-9", "DELETE", f"/v2/{NAME}/manifests/{DIGEST}", Manifests.delete_manifest),
    ("end-10", "DELETE", f"/v2/{NAME}/blobs/{DIGEST}", Blobs.delete_blob),
    ("end-12a", "GET", f"/v2/{NAME}/referrers/{DIGEST}", Referrers.list_referrers),
    ("end-13", "GET", f"/v2/{NAME}/blobs/uploads/{UPLOAD}", Uploads.upload_status),
    ("end-14", "DELETE", f"/v2/{NAME}/blobs/uploads/{UPLOAD}", Uploads.cancel_upload),
    ("catalog", "GET", "/v2/_catalog", Catalog.catalog),
    # Moorage's delta push/pull extension (`_moorage.chunks`, web/v2/delta.py)
    ("ext-discover", "GET", "/v2/_oci/ext/discover", Delta.discover),
    ("ext-delta", "POST", f"/v2/{NAME}/moorage/chunks/missing", Delta.missing),
    ("ext-delta", "POST", f"/v2/{NAME}/moorage/chunks", Delta.store),
    ("ext-delta", "POST", f"/v2/{NAME}/moorage/chunks/fetch", Delta.fetch),
    ("ext-delta", "PUT", f"/v2/{NAME}/moorage/recipes/{DIGEST}", Delta.commit),
    ("ext-delta", "GET", f"/v2/{NAME}/moorage/recipes/{DIGEST}", Delta.recipe),
]


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_a_repository_named_moorage_keeps_its_blob_urls(method: str) -> None:
    """The extension's paths never shadow the blobs of a repository whose name ends in
    `/moorage`."""
    route, params = V2Table(ROUTES).resolve(method, f"/v2/{NAME}/moorage/blobs/{DIGEST}")
    assert route.path == "/v2/{name}/blobs/{digest}" and params["name"] == NAME + "/moorage"


@pytest.mark.parametrize(("endpoint", "method", "path", "handler"), SPEC_ENDPOINTS,
                         ids=[f"{e}-{m}-{p}" for e, m, p, _h in SPEC_ENDPOINTS])
def test_v2_table_answers_each_spec_endpoint(endpoint, method, path, handler) -> None:
    found = V2Table(ROUTES).resolve(method, path)
    assert found is not None, f"{endpoint}: {method} {path} has no route"
    route, params = found
    assert route.handler is handler, f"{endpoint}: {method} {path} -> {route.handler}"
    if "{name}" in route.path:
        assert params["name"] == NAME  # the whole name, slashes included


def test_every_v2_route_is_reached_by_some_spec_endpoint() -> None:
    table = V2Table(ROUTES)
    reached = set()
    for _e, method, path, _h in SPEC_ENDPOINTS:
        found = table.resolve(method, path)
        assert found is not None
        reached.add(found[0])
    unreached = [(r.method, r.path) for r in ROUTES if r.is_v2 and r not in reached]
    assert not unreached, unreached


def test_uploads_are_matched_before_blobs() -> None:
    """`<name>/blobs/uploads/<id>` could also read as blob `<id>` of `<name>/blobs/uploads`."""
    route, params = V2Table(ROUTES).resolve("GET", f"/v2/{NAME}/blobs/uploads/{DIGEST}")
    assert route.handler is Uploads.upload_status
    assert params == {"name": NAME, "upload": DIGEST}


def test_a_known_path_with_another_method_is_405_with_allow() -> None:
    with pytest.raises(Unsupported) as caught:
        V2Table(ROUTES).resolve("POST", f"/v2/{NAME}/manifests/latest")
    assert caught.value.status == 405
    assert caught.value.headers["Allow"] == "GET, HEAD, PUT, DELETE"


def test_an_unknown_v2_path_matches_nothing() -> None:
    assert V2Table(ROUTES).resolve("GET", f"/v2/{NAME}/nothing/here") is None


def test_a_real_application_routes_every_table_route(registry: Registry, tmp_path: Path) -> None:
    """make_app binds every handler and gives aiohttp each non-/v2/ route (and /v2/ to the
    dispatcher)."""
    settings = Settings.from_env({}, data_dir=tmp_path / "unused", auth=False)
    app = make_app(settings, registry)
    routed = set()
    for resource_route in app.router.routes():
        info = resource_route.resource.get_info() if resource_route.resource else {}
        routed.add((resource_route.method, info.get("path") or info.get("formatter")))
    expected = {(r.method, r.path) for r in ROUTES if not r.is_v2}
    assert expected <= routed, sorted(expected - routed)
    assert {("*", "/v2"), ("*", "/v2/{tail}")} <= routed
    extra = {(m, p) for m, p in routed if not re.match(r"/v2", p or "")} - expected
    assert not extra, sorted(extra)
