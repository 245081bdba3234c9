"""Robot accounts: creation, scope, revocation, expiry, and robot-only push."""

from __future__ import annotations

import time

import pytest
from support.http import Bearer, call, describe
from support.oci import assert_error, v2

from .authkit import (
    access_of,
    all_scope,
    assert_denied,
    assert_unauthorized,
    eventually,
    get_manifest,
    get_token,
    new_source,
    post_token,
    pull_scope,
    push_image,
    push_scope,
    rfc3339_seconds,
    start_upload,
    token,
    try_push,
    uniq,
)


def test_create_robot_returns_secret_once(world):
    api = world.api
    name = uniq("ci")
    before = time.time()
    r = api(
        "POST",
        "robots",
        json={
            "name": name,
            "permissions": {world.team: ["pull", "push"]},
            "description": "CI for team",
        },
    )
    assert r.status_code == 201, describe(r)
    body = r.json()
    assert body["name"] == f"robot${name}", body
    assert isinstance(body["secret"], str) and len(body["secret"]) >= 32, body
    assert body["expires_at"] is None, body
    # listed, without the secret
    listing = api("GET", "robots")
    assert listing.status_code == 200, describe(listing)
    assert body["secret"] not in listing.text
    mine = [x for x in listing.json()["robots"] if x["name"] == f"robot${name}"]
    assert len(mine) == 1, listing.json()
    assert mine[0]["permissions"] == {world.team: ["pull", "push"]}, mine
    assert mine[0]["revoked"] is False, mine
    assert "secret" not in mine[0], mine

    with_expiry = api.create_robot({world.team: ["pull"]}, expires_in=3600)[2]
    assert before + 3590 < rfc3339_seconds(with_expiry["expires_at"]) < time.time() + 3610


def test_robot_acts_only_in_its_namespaces_with_its_actions(world):
    reg = world.reg
    other = world.api.create_namespace(visibility="private")
    push_image(reg, f"{other}/app", "v1", world.admin)
    robot, secret, _ = world.api.create_robot({world.team: ["pull", "push"]})
    creds = (robot, secret)
    team_repo = f"{world.team}/ci-{uniq('r')}"

    # Basic auth
    assert call("GET", v2(reg, ""), auth=creds).status_code == 200
    assert get_manifest(reg, f"{world.team}/app", "v1", creds).content == world.team_image.body
    r = try_push(reg, team_repo, creds)
    assert r.status_code == 201, describe(r)
    assert_denied(call("DELETE", v2(reg, f"{world.team}/app/manifests/v1"), auth=creds))
    assert get_manifest(reg, f"{world.pub}/app", "v1", creds).status_code == 200  # public
    assert_denied(start_upload(reg, f"{world.pub}/app", creds))
    assert_denied(get_manifest(reg, f"{other}/app", "v1", creds))
    assert_denied(try_push(reg, f"{robot.removeprefix('robot$')}/x", creds))  # no personal ns

    # tokens: only what the robot has
    r = get_token(
        reg,
        all_scope(team_repo),
        all_scope(f"{world.pub}/app"),
        all_scope(f"{other}/app"),
        "registry:catalog:*",
        auth=creds,
    )
    assert r.status_code == 200, describe(r)
    granted = access_of(r.json()["token"])
    assert granted.get(("repository", team_repo)) == {"pull", "push"}, granted
    assert granted.get(("repository", f"{world.pub}/app")) == {"pull"}, granted
    assert ("repository", f"{other}/app") not in granted, granted
    assert jwt_sub(r.json()["token"]) == robot
    tok = Bearer(r.json()["token"])
    r = try_push(reg, team_repo, tok)
    assert r.status_code == 201, describe(r)
    assert_denied(call("DELETE", v2(reg, f"{team_repo}/manifests/x"), auth=tok))


def jwt_sub(tok: str) -> str:
    from .authkit import jwt_claims

    return jwt_claims(tok)["sub"]


def test_pull_only_robot_cannot_push(world):
    reg = world.reg
    robot, secret, _ = world.api.create_robot({world.team: ["pull"]})
    creds = (robot, secret)
    assert get_manifest(reg, f"{world.team}/app", "v1", creds).status_code == 200
    assert_denied(start_upload(reg, f"{world.team}/app", creds))
    tok = token(reg, creds, push_scope(f"{world.team}/app"))
    assert access_of(tok) == {("repository", f"{world.team}/app"): {"pull"}}
    assert_denied(start_upload(reg, f"{world.team}/app", Bearer(tok)))


def test_robot_wrong_secret(world):
    robot, secret, _ = world.api.create_robot({world.team: ["pull"]})
    src = new_source()
    r = get_token(world.reg, pull_scope(f"{world.team}/app"), auth=(robot, secret[:-1]), source=src)
    assert_error(r, 401, "UNAUTHORIZED")
    r = call(
        "GET", v2(world.reg, f"{world.team}/app/tags/list"), auth=(robot, secret + "x"), source=src
    )
    assert_unauthorized(r)
    # the secret belongs to this robot only
    other, _other_secret, _ = world.api.create_robot({world.team: ["pull"]})
    r = call("GET", v2(world.reg, ""), auth=(other, secret), source=src)
    assert_unauthorized(r)
    # and without the robot$ prefix it is no account at all
    r = call("GET", v2(world.reg, ""), auth=(robot.removeprefix("robot$"), secret), source=src)
    assert_unauthorized(r)


def test_revoked_robot_is_refused_at_once(world):
    """A robot that never logged in before revocation: no cached login can linger."""
    reg = world.reg
    robot, secret, _ = world.api.create_robot({world.team: ["pull", "push"]})
    r = world.api("DELETE", f"robots/{robot}")
    assert r.status_code == 204, describe(r)
    src = new_source()  # failed logins are counted per address: not 127.0.0.1
    r = get_token(reg, push_scope(f"{world.team}/app"), auth=(robot, secret), source=src)
    assert_error(r, 401, "UNAUTHORIZED")
    assert "token" not in r.json()
    r = post_token(
        reg,
        source=src,
        grant_type="password",
        username=robot,
        password=secret,
        service="moorage",
        scope=push_scope(f"{world.team}/app"),
    )
    assert_error(r, 401, "UNAUTHORIZED")
    assert_unauthorized(get_manifest(reg, f"{world.team}/app", "v1", (robot, secret), source=src))
    assert_unauthorized(call("GET", v2(reg, ""), auth=(robot, secret), source=src))
    listed = {x["name"]: x for x in world.api.ok("GET", "robots")["robots"]}
    assert listed[robot]["revoked"] is True, listed[robot]


def test_revocation_ends_refresh_tokens(world):
    reg = world.reg
    robot, secret, _ = world.api.create_robot({world.team: ["pull"]})
    r = post_token(
        reg,
        grant_type="password",
        username=robot,
        password=secret,
        service="moorage",
        scope=pull_scope(f"{world.team}/app"),
        access_type="offline",
        client_id="ci",
    )
    assert r.status_code == 200, describe(r)
    refresh = r.json()["refresh_token"]
    r = post_token(
        reg,
        grant_type="refresh_token",
        refresh_token=refresh,
        service="moorage",
        scope=pull_scope(f"{world.team}/app"),
    )
    assert r.status_code == 200, describe(r)
    assert world.api("DELETE", f"robots/{robot}").status_code == 204
    r = post_token(
        reg,
        grant_type="refresh_token",
        refresh_token=refresh,
        service="moorage",
        scope=pull_scope(f"{world.team}/app"),
    )
    assert_error(r, 401, "UNAUTHORIZED")
    assert "access_token" not in r.text


def test_robot_expires(world):
    """expires_in=2: a robot that has not logged in before is refused once it has expired."""
    reg = world.reg
    robot, secret, created = world.api.create_robot({world.team: ["pull"]}, expires_in=2)
    assert rfc3339_seconds(created["expires_at"]) <= time.time() + 2.5, created
    time.sleep(3)
    src = new_source()
    r = get_token(reg, pull_scope(f"{world.team}/app"), auth=(robot, secret), source=src)
    assert_error(r, 401, "UNAUTHORIZED")
    assert_unauthorized(get_manifest(reg, f"{world.team}/app", "v1", (robot, secret), source=src))


def test_robot_only_push(world):
    reg = world.reg
    api = world.api
    ns = api.create_namespace(visibility="private")
    (maint,) = world.new_users(1)
    api.set_member(ns, maint[0], "maintainer")
    robot, secret, _ = api.create_robot({ns: ["pull", "push"]})
    repo = f"{ns}/app"
    r = try_push(reg, repo, maint)
    assert r.status_code == 201, describe(r)

    info = api.ok("PATCH", f"namespaces/{ns}", json={"robot_only_push": True})
    assert info["robot_only_push"] is True, info

    # The maintainer can no longer push, with Basic or with a token. Checked on a repository
    # nobody has asked about yet (so no worker has a cached decision about it) ...
    fresh = f"{ns}/{uniq('fresh')}"
    assert_denied(try_push(reg, fresh, maint))
    tok = token(reg, maint, push_scope(fresh))
    assert access_of(tok) == {("repository", fresh): {"pull"}}
    assert_denied(start_upload(reg, fresh, Bearer(tok)))
    # ... and, within a few seconds, on the repository they pushed to a moment ago
    eventually(lambda: assert_denied(try_push(reg, repo, maint)))
    # pulling is still fine
    assert call("GET", v2(reg, f"{repo}/tags/list"), auth=maint).status_code == 200
    # the robot pushes
    r = try_push(reg, fresh, (robot, secret))
    assert r.status_code == 201, describe(r)
    r = try_push(reg, repo, Bearer(token(reg, (robot, secret), push_scope(repo))))
    assert r.status_code == 201, describe(r)

    # switched off again: the maintainer pushes again
    api.ok("PATCH", f"namespaces/{ns}", json={"robot_only_push": False})
    r = try_push(reg, f"{ns}/{uniq('again')}", maint)
    assert r.status_code == 201, describe(r)


def _assert_status(r, status: int) -> None:
    assert r.status_code == status, describe(r)


def test_namespace_admin_creates_robots_for_own_namespaces_only(world):
    reg = world.reg
    owner, bystander = world.new_users(2)
    push_image(reg, f"{owner[0]}/app", "v1", owner)  # owner's personal namespace
    as_owner = world.api_as(owner)
    robot, secret, _ = as_owner.create_robot({owner[0]: ["pull", "push"]})
    assert try_push(reg, f"{owner[0]}/app", (robot, secret)).status_code == 201
    # not for a namespace they do not administer, not even mixed with their own
    for perms in (
        {world.team: ["pull"]},
        {owner[0]: ["pull"], world.pub: ["pull"]},
        {uniq("nons"): ["pull"]},
    ):
        r = as_owner("POST", "robots", json={"name": uniq("r"), "permissions": perms})
        assert_denied(r)
    # a reader of team may not either
    r = world.api_as(world.users["reader"])(
        "POST", "robots", json={"name": uniq("r"), "permissions": {world.team: ["pull"]}}
    )
    assert_denied(r)
    # the owner sees their robot and not others'
    admin_robot, _s, _ = world.api.create_robot({world.team: ["pull"]})
    names = [x["name"] for x in as_owner.ok("GET", "robots")["robots"]]
    assert robot in names and admin_robot not in names, names
    bystander_names = [x["name"] for x in world.api_as(bystander).ok("GET", "robots")["robots"]]
    assert robot not in bystander_names and admin_robot not in bystander_names
    # and may not revoke others' robots
    assert_denied(as_owner("DELETE", f"robots/{admin_robot}"))
    assert_denied(world.api_as(bystander)("DELETE", f"robots/{robot}"))
    r = as_owner("DELETE", f"robots/{robot}")
    assert r.status_code == 204, describe(r)


@pytest.mark.parametrize(
    "body,status",
    [
        ({"name": "Bad Name", "permissions": {"x": ["pull"]}}, 400),
        ({"name": "../../etc", "permissions": {"x": ["pull"]}}, 400),
        ({"name": "robot$x", "permissions": {"x": ["pull"]}}, 400),
        ({"name": "ok", "permissions": {}}, 400),
        ({"name": "ok", "permissions": {"{team}": ["fly"]}}, 400),
        ({"name": "ok", "permissions": {"{team}": []}}, 400),
        ({"name": "ok", "permissions": {"{team}": "pull"}}, 400),
        ({"name": "ok", "permissions": ["{team}"]}, 400),
        ({"name": "ok", "permissions": {"{team}": ["pull"]}, "expires_in": -5}, 400),
        ({"name": "ok", "permissions": {"{team}": ["pull"]}, "expires_in": "soon"}, 400),
        ({"permissions": {"{team}": ["pull"]}}, 400),
    ],
)
def test_robot_invalid_requests(world, body, status):
    body = {k: v for k, v in body.items()}
    perms = body.get("permissions")
    if isinstance(perms, dict):
        body["permissions"] = {k.format(team=world.team): v for k, v in perms.items()}
    elif isinstance(perms, list):
        body["permissions"] = [p.format(team=world.team) for p in perms]
    if body.get("name") == "ok":
        body["name"] = uniq("ok")
    r = world.api("POST", "robots", json=body)
    assert_error(r, status)
    assert "secret" not in r.text


def test_duplicate_robot_name_conflicts(world):
    name = uniq("dup")
    world.api.create_robot({world.team: ["pull"]}, name=name)
    r = world.api("POST", "robots", json={"name": name, "permissions": {world.team: ["pull"]}})
    assert r.status_code == 409, describe(r)
    assert "secret" not in r.text


def test_robot_cannot_use_the_management_api_as_admin(world):
    robot, secret, _ = world.api.create_robot({world.team: ["pull", "push", "delete"]})
    as_robot = world.api_as((robot, secret))
    for method, path, body in (
        ("GET", "users", None),
        ("GET", "audit", None),
        ("POST", "users", {"name": uniq("x"), "password": "p" * 12}),
        ("PUT", f"namespaces/{world.team}/members/{world.outsider[0]}", {"role": "admin"}),
        ("POST", "robots", {"name": uniq("r"), "permissions": {world.team: ["pull"]}}),
    ):
        assert_denied(as_robot(method, path, json=body))


def test_revoking_unknown_robot_is_404(world):
    r = world.api("DELETE", f"robots/robot${uniq('none')}")
    assert r.status_code == 404, describe(r)
