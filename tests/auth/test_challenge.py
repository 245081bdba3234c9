"""Without credentials: 401 UNAUTHORIZED with the Bearer challenge that sends clients to /token."""

from __future__ import annotations

import pytest
from support.http import call, describe
from support.oci import assert_error, random_digest, v2

from .authkit import assert_unauthorized, parse_challenge


def expected_challenge(reg, scope: str | None = None) -> str:
    value = f'Bearer realm="{reg.url}/token",service="moorage"'
    if scope:
        value += f',scope="{scope}"'
    return value


@pytest.mark.parametrize("path", ["/v2/", "/v2"])
def test_base_endpoint_requires_credentials(world, path):
    reg = world.reg
    r = call("GET", reg.url + path)
    assert_unauthorized(r)
    assert r.headers["WWW-Authenticate"] == expected_challenge(reg), describe(r)
    assert r.headers.get("Docker-Distribution-API-Version") == "registry/2.0", describe(r)
    h = call("HEAD", reg.url + path)
    assert h.status_code == 401, describe(h)
    assert h.headers["WWW-Authenticate"] == expected_challenge(reg), describe(h)


# (method, path under /v2/<repo>/, actions named in the challenge's scope)
REPO_ENDPOINTS = [
    ("GET", "manifests/v1", "pull"),
    ("HEAD", "manifests/v1", "pull"),
    ("GET", "tags/list", "pull"),
    ("GET", "blobs/{digest}", "pull"),
    ("HEAD", "blobs/{digest}", "pull"),
    ("GET", "referrers/{digest}", "pull"),
    ("PUT", "manifests/v2", "pull,push"),
    ("POST", "blobs/uploads/", "pull,push"),
    ("GET", "blobs/uploads/{upload}", "pull,push"),
    ("PATCH", "blobs/uploads/{upload}", "pull,push"),
    ("PUT", "blobs/uploads/{upload}?digest={digest}", "pull,push"),
    ("DELETE", "blobs/uploads/{upload}", "pull,push"),
    ("DELETE", "manifests/v1", "delete"),
    ("DELETE", "blobs/{digest}", "delete"),
]


@pytest.mark.parametrize(
    "method,tail,actions", REPO_ENDPOINTS, ids=[f"{m} {t}" for m, t, _ in REPO_ENDPOINTS]
)
@pytest.mark.parametrize("which", ["private", "public"])
def test_repository_endpoints_challenge_with_scope(world, method, tail, actions, which):
    reg = world.reg
    repo = f"{world.team if which == 'private' else world.pub}/app"
    path = tail.format(digest=random_digest(), upload="0123456789abcdef")
    r = call(
        method,
        v2(reg, f"{repo}/{path}"),
        headers={"Content-Length": "0"} if method in ("PUT", "PATCH", "POST") else {},
    )
    if method == "HEAD":
        assert r.status_code == 401, describe(r)
    else:
        assert_unauthorized(r)
    assert r.headers.get("WWW-Authenticate") == expected_challenge(
        reg, f"repository:{repo}:{actions}"
    ), describe(r)


def test_challenge_names_the_nested_repository(world):
    reg = world.reg
    repo = f"{world.team}/a/b/c"
    r = call("GET", v2(reg, f"{repo}/tags/list"))
    assert_unauthorized(r)
    assert r.headers["WWW-Authenticate"] == expected_challenge(reg, f"repository:{repo}:pull"), (
        describe(r)
    )


def test_catalog_challenge(world):
    r = call("GET", v2(world.reg, "_catalog"))
    assert_unauthorized(r)
    assert r.headers["WWW-Authenticate"] == expected_challenge(world.reg, "registry:catalog:*"), (
        describe(r)
    )


def test_realm_follows_the_host_the_client_used(world):
    """The realm is built from the request's Host, so a client that reached the server by
    another name is sent back to the same name."""
    reg = world.reg
    r = call("GET", f"http://localhost:{reg.port}/v2/")
    assert r.status_code == 401, describe(r)
    _scheme, params = parse_challenge(r.headers.get("WWW-Authenticate"))
    assert params["realm"] == f"http://localhost:{reg.port}/token", describe(r)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "users"),
        ("POST", "users"),
        ("GET", "namespaces"),
        ("GET", "robots"),
        ("GET", "audit"),
        ("PATCH", "users/admin"),
        ("DELETE", "robots/robot$x"),
    ],
)
def test_management_api_requires_credentials(world, method, path):
    r = call(method, f"{world.reg.url}/api/v1/{path}", json={})
    assert_error(r, 401, "UNAUTHORIZED")
    scheme, _params = parse_challenge(r.headers.get("WWW-Authenticate"))
    assert scheme in ("basic", "bearer"), describe(r)
