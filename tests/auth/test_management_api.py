"""The management API /api/v1: users, namespaces, members; who may call what."""

from __future__ import annotations

import pytest
from support.http import Bearer, call, describe
from support.oci import assert_error, v2

from .authkit import (
    assert_denied,
    assert_unauthorized,
    get_token,
    new_password,
    new_source,
    post_token,
    pull_scope,
    token,
    uniq,
)

# ----------------------------------------------------------------------------------------------
# users


def test_list_and_create_users(world):
    api = world.api
    name, pw = api.create_user()
    r = api("GET", "users")
    assert r.status_code == 200, describe(r)
    users = {u["name"]: u for u in r.json()["users"]}
    assert users[name]["admin"] is False and users[name]["disabled"] is False, users[name]
    assert users["admin"]["admin"] is True, users["admin"]
    # no password material in the listing
    assert pw not in r.text and "argon2" not in r.text and "$" not in r.text
    # the new account works
    assert call("GET", v2(world.reg, ""), auth=(name, pw)).status_code == 200


def test_create_server_admin(world):
    name, pw = world.api.create_user(admin=True)
    as_new = world.api_as((name, pw))
    assert as_new("GET", "users").status_code == 200
    ns = as_new.create_namespace()
    assert ns in [n["name"] for n in as_new.ok("GET", "namespaces")["namespaces"]]


@pytest.mark.parametrize(
    "name",
    [
        "Upper",
        "-dash",
        ".dot",
        "a/b",
        "../../etc/passwd",
        "x" * 65,
        "",
        "cli",
        "robot$x",
        "sp ace",
        "ünï",
        "admin\x00",
        "a:b",
    ],
)
def test_invalid_user_names(world, name):
    r = world.api("POST", "users", json={"name": name, "password": new_password()})
    assert_error(r, 400)


def test_user_creation_checks(world):
    api = world.api
    name, _ = api.create_user()
    r = api("POST", "users", json={"name": name, "password": new_password()})
    assert r.status_code == 409, describe(r)
    r = api("POST", "users", json={"name": uniq("u"), "password": "short"})
    assert_error(r, 400)
    r = api("POST", "users", json={"name": uniq("u")})
    assert_error(r, 400)
    r = api("POST", "users", json={"name": uniq("u"), "password": 12345678})
    assert_error(r, 400)
    r = api("POST", "users", data=b"not json", headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    r = api("POST", "users", json=["a", "list"])
    assert_error(r, 400)


@pytest.mark.parametrize("who", ["maintainer", "reader", "outsider"])
def test_non_admins_may_not_manage_users_or_read_audit(world, who):
    creds = world.outsider if who == "outsider" else world.users[who]
    as_user = world.api_as(creds)
    assert_denied(as_user("GET", "users"))
    assert_denied(
        as_user(
            "POST", "users", json={"name": uniq("u"), "password": new_password(), "admin": True}
        )
    )
    assert_denied(as_user("PATCH", f"users/{world.outsider[0]}", json={"disabled": True}))
    assert_denied(as_user("PATCH", "users/admin", json={"password": new_password()}))
    assert_denied(as_user("POST", "namespaces", json={"name": uniq("ns")}))
    assert_denied(as_user("GET", "audit"))
    assert_denied(as_user("GET", "audit", params={"format": "jsonl"}))
    assert_denied(as_user("PATCH", f"namespaces/{world.team}", json={"visibility": "public"}))
    assert_denied(
        as_user("PUT", f"namespaces/{world.team}/members/{creds[0]}", json={"role": "admin"})
    )


def test_wrong_credentials_on_the_api_are_401(world):
    name, pw = world.new_user()
    as_wrong = world.api_as((name, pw + "x"), source=new_source())
    for method, path in (("GET", "users"), ("GET", "namespaces"), ("GET", "robots")):
        assert_error(as_wrong(method, path), 401, "UNAUTHORIZED")
    as_garbage = world.api_as(Bearer("garbage"))
    assert_error(as_garbage("GET", "namespaces"), 401, "UNAUTHORIZED")


def test_admin_changes_a_password(world):
    reg = world.reg
    name, old = world.api.create_user()  # never logged in: nothing cached anywhere
    new = new_password()
    r = world.api("PATCH", f"users/{name}", json={"password": new})
    assert r.status_code == 200, describe(r)
    src = new_source()
    assert_error(get_token(reg, auth=(name, old), source=src), 401, "UNAUTHORIZED")
    assert_unauthorized(call("GET", v2(reg, ""), auth=(name, old), source=src))
    assert get_token(reg, auth=(name, new)).status_code == 200
    r = world.api("PATCH", f"users/{name}", json={"password": "short"})
    assert_error(r, 400)
    r = world.api("PATCH", f"users/{uniq('none')}", json={"password": new_password()})
    assert r.status_code == 404, describe(r)


def test_users_change_their_own_password_only(world):
    reg = world.reg
    me, other = world.new_users(2)
    new = new_password()
    r = world.api_as(me)("PATCH", f"users/{me[0]}", json={"password": new})
    assert r.status_code == 200, describe(r)
    # the old password was used for that one request only, on the worker that made the change
    # (a login is remembered for up to 60 s by the worker process that checked it)
    assert_error(get_token(reg, auth=me, source=new_source()), 401, "UNAUTHORIZED")
    assert get_token(reg, auth=(me[0], new)).status_code == 200
    as_me = world.api_as((me[0], new))
    assert_denied(as_me("PATCH", f"users/{other[0]}", json={"password": new_password()}))
    assert_denied(as_me("PATCH", f"users/{me[0]}", json={"disabled": True}))
    assert_denied(as_me("POST", "users", json={"name": uniq("x"), "password": new}))
    # nor can they make themselves an admin
    r = as_me("PATCH", f"users/{me[0]}", json={"admin": True, "is_admin": True})
    assert r.status_code in (200, 400, 403), describe(r)
    assert_denied(as_me("GET", "users"))
    # the other user's password is unchanged
    assert get_token(reg, auth=other).status_code == 200


def test_disabled_user_can_no_longer_log_in(world):
    reg = world.reg
    (name, pw), (name2, pw2) = world.new_users(2)  # never logged in: a fresh login each time
    r = world.api("PATCH", f"users/{name}", json={"disabled": True})
    assert r.status_code == 200, describe(r)
    listed = {u["name"]: u for u in world.api.ok("GET", "users")["users"]}
    assert listed[name]["disabled"] is True
    src = new_source()
    assert_error(get_token(reg, auth=(name, pw), source=src), 401, "UNAUTHORIZED")
    assert_error(
        post_token(
            reg, source=src, grant_type="password", username=name, password=pw, service="moorage"
        ),
        401,
        "UNAUTHORIZED",
    )
    assert_unauthorized(call("GET", v2(reg, ""), auth=(name, pw), source=src))
    assert_error(world.api_as((name, pw), source=src)("GET", "namespaces"), 401)
    # enabled again
    world.api.ok("PATCH", f"users/{name}", json={"disabled": False})
    assert get_token(reg, auth=(name, pw)).status_code == 200
    # a refresh token issued before the account was disabled stops working
    r = get_token(reg, auth=(name2, pw2), offline_token="true")
    refresh = r.json()["refresh_token"]
    world.api.ok("PATCH", f"users/{name2}", json={"disabled": True})
    r = post_token(reg, grant_type="refresh_token", refresh_token=refresh, service="moorage")
    assert_error(r, 401, "UNAUTHORIZED")


# ----------------------------------------------------------------------------------------------
# namespaces


def test_namespace_listing_shows_what_the_caller_may_see(world):
    def names(creds):
        return {n["name"]: n for n in world.api_as(creds).ok("GET", "namespaces")["namespaces"]}

    as_admin = names(world.admin)
    assert world.team in as_admin and world.pub in as_admin
    as_reader = names(world.users["reader"])
    assert as_reader[world.team]["role"] == "reader", as_reader
    assert world.pub in as_reader
    as_outsider = names(world.outsider)
    assert world.pub in as_outsider and world.team not in as_outsider, as_outsider


def test_get_namespace(world):
    info = world.api_as(world.users["reader"]).ok("GET", f"namespaces/{world.team}")
    assert info["name"] == world.team and info["visibility"] == "private", info
    members = {m["user"]: m["role"] for m in info["members"]}
    assert members == {world.users[r][0]: r for r in world.users}, members
    # a private namespace does not exist for outsiders; a public one is visible
    r = world.api_as(world.outsider)("GET", f"namespaces/{world.team}")
    assert r.status_code == 404, describe(r)
    assert world.users["reader"][0] not in r.text
    assert world.api_as(world.outsider)("GET", f"namespaces/{world.pub}").status_code == 200
    assert world.api("GET", f"namespaces/{uniq('none')}").status_code == 404


def test_create_namespace_checks(world):
    api = world.api
    ns = api.create_namespace(visibility="public")
    assert api.ok("GET", f"namespaces/{ns}")["visibility"] == "public"
    assert api("POST", "namespaces", json={"name": ns}).status_code == 409
    for bad in ("a/b", "UPPER", "", "../x", "x" * 300, "a..b"):
        assert_error(api("POST", "namespaces", json={"name": bad}), 400)
    assert_error(api("POST", "namespaces", json={"name": uniq("ns"), "visibility": "secret"}), 400)
    assert_error(api("PATCH", f"namespaces/{ns}", json={"visibility": "secret"}), 400)
    r = api("PATCH", f"namespaces/{uniq('none')}", json={"visibility": "public"})
    assert r.status_code == 404, describe(r)


def test_member_checks(world):
    api = world.api
    ns = api.create_namespace()
    (user,) = world.new_users(1)
    assert_error(api("PUT", f"namespaces/{ns}/members/{user[0]}", json={"role": "owner"}), 400)
    assert_error(api("PUT", f"namespaces/{ns}/members/{user[0]}", json={}), 400)
    r = api("PUT", f"namespaces/{ns}/members/{uniq('nobody')}", json={"role": "reader"})
    assert r.status_code == 404, describe(r)
    r = api("PUT", f"namespaces/{uniq('none')}/members/{user[0]}", json={"role": "reader"})
    assert r.status_code == 404, describe(r)
    r = api("PUT", f"namespaces/{ns}/members/{user[0]}", json={"role": "reader"})
    assert r.status_code == 200 and r.json() == {"user": user[0], "role": "reader"}, describe(r)


# ----------------------------------------------------------------------------------------------
# Bearer tokens on the management API


def test_bearer_token_on_management_api(world):
    admin_token = token(world.reg, world.admin)
    r = call("GET", f"{world.reg.url}/api/v1/users", auth=Bearer(admin_token))
    assert r.status_code == 200, describe(r)
    reader_token = token(world.reg, world.users["reader"], pull_scope(f"{world.team}/app"))
    r = call("GET", f"{world.reg.url}/api/v1/users", auth=Bearer(reader_token))
    assert_denied(r)
    r = call("GET", f"{world.reg.url}/api/v1/namespaces", auth=Bearer(reader_token))
    assert r.status_code == 200, describe(r)
    # an anonymous token is nobody
    anon = token(world.reg, None)
    r = call("GET", f"{world.reg.url}/api/v1/users", auth=Bearer(anon))
    assert r.status_code in (401, 403), describe(r)
    r = call(
        "POST", f"{world.reg.url}/api/v1/namespaces", auth=Bearer(anon), json={"name": uniq("ns")}
    )
    assert r.status_code in (401, 403), describe(r)
