"""Basic auth on /v2/, namespaces (first path component), personal namespaces, public/private,
and the four roles."""

from __future__ import annotations

import base64
import uuid

import pytest
from support.http import Bearer, RawAuth, call, describe
from support.oci import assert_error, v2

from .authkit import (
    ROLE_ACTIONS,
    ROLES,
    all_scope,
    assert_denied,
    assert_unauthorized,
    challenge,
    eventually,
    get_blob,
    get_manifest,
    get_token,
    new_source,
    push_image,
    push_scope,
    start_upload,
    token,
    try_push,
    uniq,
)

# ----------------------------------------------------------------------------------------------
# Basic auth directly on /v2/


def test_basic_auth_on_v2(world):
    reg = world.reg
    r = call("GET", v2(reg, ""), auth=world.users["reader"])
    assert r.status_code == 200, describe(r)
    g = get_manifest(reg, f"{world.team}/app", "v1", world.users["reader"])
    assert g.status_code == 200 and g.content == world.team_image.body, describe(g)
    b = get_blob(reg, f"{world.team}/app", world.team_image.blobs[1].digest, world.users["reader"])
    assert b.status_code == 200 and b.content == world.team_image.blobs[1].data, describe(b)


def test_basic_auth_wrong_password_or_unknown_user(world):
    reg = world.reg
    name, pw = world.new_user()  # failed logins count against the account: not a shared one
    src = new_source()
    for creds in ((name, pw + "x"), (name, ""), (uniq("nobody"), pw)):
        r = call("GET", v2(reg, ""), auth=creds, source=src)
        assert_unauthorized(r)
        r = get_manifest(reg, f"{world.team}/app", "v1", creds, source=src)
        params = assert_unauthorized(r)
        assert params.get("scope") == f"repository:{world.team}/app:pull", describe(r)
        assert world.team_image.body not in r.content


@pytest.mark.parametrize(
    "value",
    [
        "Basic",
        "Basic !!!notbase64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":password-only").decode(),
        "Digest username=admin",
        "Bearer",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "admin:password",
    ],
)
def test_malformed_credentials_are_401(world, value):
    r = call(
        "GET",
        v2(world.reg, f"{world.team}/app/tags/list"),
        auth=RawAuth(value),
        source=new_source(),
    )
    assert_unauthorized(r)


def test_authenticated_but_not_allowed_is_403(world):
    reg = world.reg
    repo = f"{world.team}/app"
    assert_denied(get_manifest(reg, repo, "v1", world.outsider))
    h = get_manifest(reg, repo, "v1", world.outsider, method="HEAD")
    assert h.status_code == 403 and h.content == b"", describe(h)
    assert_denied(call("GET", v2(reg, f"{repo}/tags/list"), auth=world.outsider))
    assert_denied(get_blob(reg, repo, world.team_image.blobs[0].digest, world.outsider))
    assert_denied(start_upload(reg, repo, world.users["reader"]))
    assert_denied(call("DELETE", v2(reg, f"{repo}/manifests/v1"), auth=world.users["developer"]))
    assert get_manifest(reg, repo, "v1", world.admin).status_code == 200


# ----------------------------------------------------------------------------------------------
# roles


def _check_role(world, creds, mode: str, allowed: set[str]) -> None:
    reg = world.reg
    ns = world.team
    repo = f"{ns}/roles-{uuid.uuid4().hex[:8]}"
    m = push_image(reg, repo, "victim", world.admin)

    def auth_for(scope_repo: str):
        if mode == "basic":
            return creds
        return Bearer(token(reg, creds, all_scope(scope_repo)))

    # pull
    g = get_manifest(reg, repo, "victim", auth_for(repo))
    if "pull" in allowed:
        assert g.status_code == 200 and g.content == m.body, describe(g)
    else:
        assert_denied(g)
    # push: a whole image, blobs and manifest
    r = try_push(reg, repo, auth_for(repo))
    if "push" in allowed:
        assert r.status_code == 201, describe(r)
    else:
        assert_denied(r)
    # delete: a tag, a manifest by digest, a blob
    d = call("DELETE", v2(reg, f"{repo}/manifests/victim"), auth=auth_for(repo))
    b = call("DELETE", v2(reg, f"{repo}/blobs/{m.blobs[1].digest}"), auth=auth_for(repo))
    if "delete" in allowed:
        assert d.status_code == 202, describe(d)
        assert b.status_code == 202, describe(b)
        x = call("DELETE", v2(reg, f"{repo}/manifests/{m.digest}"), auth=auth_for(repo))
        assert x.status_code == 202, describe(x)
    else:
        assert_denied(d)
        assert_denied(b)
        assert get_manifest(reg, repo, "victim", world.admin).status_code == 200


@pytest.mark.parametrize("mode", ["basic", "token"])
@pytest.mark.parametrize("role", ROLES)
def test_role_permissions(world, role, mode):
    _check_role(world, world.users[role], mode, ROLE_ACTIONS[role])


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_non_member_has_no_access_to_private_namespace(world, mode):
    _check_role(world, world.outsider, mode, set())


def test_members_of_one_namespace_have_nothing_in_another(world):
    reg = world.reg
    other = world.api.create_namespace(visibility="private")
    repo = f"{other}/app"
    push_image(reg, repo, "v1", world.admin)
    for role in ROLES:
        assert_denied(get_manifest(reg, repo, "v1", world.users[role]))
        assert_denied(start_upload(reg, repo, world.users[role]))
        r = get_token(reg, all_scope(repo), auth=world.users[role])
        assert r.json()["scope"] == "", r.json()


def test_namespace_admin_manages_members_and_settings(world):
    reg = world.reg
    api = world.api
    ns = api.create_namespace(visibility="private")
    repo = f"{ns}/app"
    push_image(reg, repo, "v1", world.admin)
    owner, maint, member = world.new_users(3)
    api.set_member(ns, owner[0], "admin")
    api.set_member(ns, maint[0], "maintainer")
    as_owner, as_maint = world.api_as(owner), world.api_as(maint)

    # the namespace admin adds a reader, who can pull but not push
    as_owner.ok("PUT", f"namespaces/{ns}/members/{member[0]}", json={"role": "reader"})
    assert get_manifest(reg, repo, "v1", member).status_code == 200
    assert_denied(start_upload(reg, repo, member))
    # ... promotes them to developer: now they can push (to a repository they have not been
    # refused on in the last seconds, so no cached decision is involved)
    as_owner.ok("PUT", f"namespaces/{ns}/members/{member[0]}", json={"role": "developer"})
    r = try_push(reg, f"{ns}/{uniq('dev')}", member)
    assert r.status_code == 201, describe(r)
    info = as_owner.ok("GET", f"namespaces/{ns}")
    assert {"user": member[0], "role": "developer"} in info["members"], info
    # ... and removes them: no access at all any more
    r = as_owner("DELETE", f"namespaces/{ns}/members/{member[0]}")
    assert r.status_code == 204, describe(r)
    eventually(lambda: assert_denied(get_manifest(reg, repo, "v1", member)))

    # a maintainer may push and delete but not manage members or settings
    r = as_maint("PUT", f"namespaces/{ns}/members/{member[0]}", json={"role": "reader"})
    assert_denied(r)
    r = as_maint("DELETE", f"namespaces/{ns}/members/{owner[0]}")
    assert_denied(r)
    r = as_maint("PATCH", f"namespaces/{ns}", json={"visibility": "public"})
    assert_denied(r)
    r = as_maint("PATCH", f"namespaces/{ns}", json={"robot_only_push": True})
    assert_denied(r)
    # nor may they promote themselves
    r = as_maint("PUT", f"namespaces/{ns}/members/{maint[0]}", json={"role": "admin"})
    assert_denied(r)

    # the namespace admin makes the namespace public: anonymous pull works
    info = as_owner.ok("PATCH", f"namespaces/{ns}", json={"visibility": "public"})
    assert info["visibility"] == "public", info

    def anonymous_pull():
        tok = Bearer(token(reg, None, all_scope(repo)))
        r = get_manifest(reg, repo, "v1", tok)
        assert r.status_code == 200, describe(r)
        assert_unauthorized(start_upload(reg, repo, tok))

    eventually(anonymous_pull)


def _assert_status(r, status: int) -> None:
    assert r.status_code == status, describe(r)


# ----------------------------------------------------------------------------------------------
# namespaces: personal, admin-created, missing


def test_personal_namespace_created_private_on_first_push(world):
    reg = world.reg
    alice, stranger = world.new_users(2)
    name = alice[0]
    repo = f"{name}/models/resnet"
    assert world.api("GET", f"namespaces/{name}").status_code == 404
    m = push_image(reg, repo, "v1", alice)

    info = world.api_as(alice).ok("GET", f"namespaces/{name}")
    assert info["visibility"] == "private", info
    assert {"user": name, "role": "admin"} in info["members"], info
    # the owner pulls and deletes; nobody else may even pull
    assert get_manifest(reg, repo, "v1", alice).content == m.body
    assert_denied(get_manifest(reg, repo, "v1", stranger))
    assert_denied(get_manifest(reg, repo, "v1", world.outsider))
    assert_unauthorized(get_manifest(reg, repo, "v1"))
    anon = Bearer(token(reg, None, all_scope(repo)))
    assert_unauthorized(get_manifest(reg, repo, "v1", anon))
    # ... until the owner shares it
    world.api_as(alice).ok(
        "PUT", f"namespaces/{name}/members/{stranger[0]}", json={"role": "reader"}
    )
    eventually(lambda: _assert_status(get_manifest(reg, repo, "v1", stranger), 200))
    d = call("DELETE", v2(reg, f"{repo}/manifests/v1"), auth=alice)
    assert d.status_code == 202, describe(d)


def test_personal_namespace_via_token_flow(world):
    reg = world.reg
    (bob,) = world.new_users(1)
    repo = f"{bob[0]}/app"
    tok = token(reg, bob, push_scope(repo))
    m = push_image(reg, repo, "v1", Bearer(tok))
    assert get_manifest(reg, repo, "v1", Bearer(tok)).content == m.body


def test_push_to_someone_elses_or_missing_namespace_is_denied(world):
    reg = world.reg
    carol, dave = world.new_users(2)
    missing = uniq("nons")
    for target in (dave[0], missing):  # dave's personal namespace (not created yet), and none
        repo = f"{target}/app"
        assert_denied(try_push(reg, repo, carol))
        # the token endpoint does not grant push there either, and the token is then refused
        r = get_token(reg, push_scope(repo), auth=carol)
        assert r.status_code == 200 and r.json()["scope"] == "", describe(r)
        assert_denied(start_upload(reg, repo, Bearer(r.json()["token"])))
        # nothing was created
        assert world.api("GET", f"namespaces/{target}").status_code == 404
    # dave's own push still creates dave's namespace, with dave (not carol) as admin
    push_image(reg, f"{dave[0]}/app", "v1", dave)
    info = world.api.ok("GET", f"namespaces/{dave[0]}")
    assert [m["user"] for m in info["members"]] == [dave[0]], info


def test_server_admin_push_creates_namespace(world):
    reg = world.reg
    ns = uniq("adm")
    m = push_image(reg, f"{ns}/app", "v1", world.admin)
    info = world.api.ok("GET", f"namespaces/{ns}")
    assert info["visibility"] == "private", info
    assert get_manifest(reg, f"{ns}/app", "v1", world.admin).content == m.body
    assert_denied(get_manifest(reg, f"{ns}/app", "v1", world.users["maintainer"]))
    assert_unauthorized(get_manifest(reg, f"{ns}/app", "v1"))


def test_public_namespace_anonymous_pull_through_challenge(world):
    """The client flow: 401 challenge -> anonymous token from the realm -> retry."""
    reg = world.reg
    for repo, allowed in ((f"{world.pub}/app", True), (f"{world.team}/app", False)):
        r = get_manifest(reg, repo, "v1")
        params = challenge(r)
        t = call(
            "GET", params["realm"], params={"service": params["service"], "scope": params["scope"]}
        )
        assert t.status_code == 200, describe(t)
        again = get_manifest(reg, repo, "v1", Bearer(t.json()["token"]))
        if allowed:
            assert again.status_code == 200 and again.content == world.pub_image.body
        else:
            assert_unauthorized(again)
    # pulling from a public namespace does not mean pushing to it
    assert_denied(start_upload(reg, f"{world.pub}/app", world.outsider))


def test_namespace_is_the_first_path_component_only(world):
    """Rights on `team` cover team/a/b/c; a namespace named like team's repo does not."""
    reg = world.reg
    dev = world.users["developer"]
    deep = f"{world.team}/{uniq('a')}/b/c"
    r = try_push(reg, deep, dev)
    assert r.status_code == 201, describe(r)
    # a repository whose *second* component is the team name gives nothing
    assert_denied(try_push(reg, f"{uniq('x')}/{world.team}", dev))
    assert_error(get_manifest(reg, f"{world.team}x/app", "v1", dev), 403, "DENIED")
