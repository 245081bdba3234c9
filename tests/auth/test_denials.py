"""A denial explains itself: every 403 DENIED (and a refused robot's 401) names the reason in one
sentence a user can act on, through Basic auth and through tokens alike."""

from __future__ import annotations

import time

import pytest
from support.http import Bearer, call, describe
from support.oci import assert_error, v2

from .authkit import await_event, get_manifest, get_token, push_scope, start_upload, token, uniq


def message(r) -> str:
    return r.json()["errors"][0]["message"]


def denied(r) -> str:
    """The message of a 403 DENIED."""
    assert_error(r, 403, "DENIED")
    return message(r)


def both(reg, creds, repo):
    """Basic credentials, and a token asking for push (which it does not get), on `repo`."""
    return [creds, Bearer(token(reg, creds, push_scope(repo)))]


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_role_too_low_names_the_role_needed(world, mode):
    reg = world.reg
    repo = f"{world.team}/app"
    reader, developer = world.users["reader"], world.users["developer"]
    auth = reader if mode == "basic" else Bearer(token(reg, reader, push_scope(repo)))
    assert denied(start_upload(reg, repo, auth)) == (
        f"{reader[0]} has role reader in namespace {world.team}: pushing needs developer or above"
    )
    auth = developer if mode == "basic" else Bearer(
        token(reg, developer, f"repository:{repo}:delete"))
    r = call("DELETE", v2(reg, f"{repo}/manifests/v1"), auth=auth)
    assert denied(r) == (f"{developer[0]} has role developer in namespace {world.team}: "
                         "deleting needs maintainer or above")


def test_robot_only_namespace_says_so(world):
    reg, api = world.reg, world.api
    ns = api.create_namespace(visibility="private")
    (dev,) = world.new_users(1)
    api.set_member(ns, dev[0], "developer")
    api.ok("PATCH", f"namespaces/{ns}", json={"robot_only_push": True})
    for auth in both(reg, dev, f"{ns}/app"):
        assert denied(start_upload(reg, f"{ns}/app", auth)) == (
            f"namespace {ns} accepts pushes from robot accounts only"
        )
    # the reason is in the audit log too
    await_event(api, {"repository": f"{ns}/app", "action": "access.push"}, outcome="denied",
                actor=dev[0])
    events = api.audit(repository=f"{ns}/app", action="access.push")
    assert "robot accounts only" in events[0]["detail"]["reason"], events[0]


def test_private_and_missing_namespaces_get_the_same_answer(world):
    """A non-member learns they need a role, but not whether the private namespace exists."""
    reg = world.reg
    outsider = world.outsider[0]
    missing = uniq("nope")
    for ns in (world.team, missing):
        r = get_manifest(reg, f"{ns}/app", "v1", world.outsider)
        assert denied(r) == (f"{outsider} is not a member of namespace {ns} (private or "
                             "nonexistent): ask a namespace admin for a role")


def test_public_namespace_push_without_a_role(world):
    reg = world.reg
    outsider = world.outsider[0]
    assert denied(start_upload(reg, f"{world.pub}/app", world.outsider)) == (
        f"{outsider} has no role in namespace {world.pub}: pushing needs developer or above"
    )


def test_robot_denials_name_its_permissions(world):
    reg, api = world.reg, world.api
    robot, secret, _ = api.create_robot({world.team: ["pull"]})
    for auth in both(reg, (robot, secret), f"{world.team}/app"):
        assert denied(start_upload(reg, f"{world.team}/app", auth)) == (
            f"{robot} may only pull in namespace {world.team}: pushing needs a robot with push "
            "there"
        )
    assert denied(get_manifest(reg, f"{world.pub}x/app", "v1", (robot, secret))) == (
        f"{robot} has no permissions in namespace {world.pub}x: pulling needs a robot with pull "
        "there"
    )


def test_expired_and_revoked_robots_are_told_why(world):
    reg, api = world.reg, world.api
    expiring, secret, _ = api.create_robot({world.team: ["pull"]}, expires_in=1)
    revoked, secret2, _ = api.create_robot({world.team: ["pull"]})
    api.ok("DELETE", f"robots/{revoked}", 204)
    time.sleep(1.5)
    r = get_token(reg, auth=(expiring, secret))
    assert_error(r, 401, "UNAUTHORIZED")
    assert message(r).startswith(f"{expiring} expired at "), describe(r)
    assert "ask a namespace admin for a new robot account" in message(r), describe(r)
    r = call("GET", v2(reg, ""), auth=(revoked, secret2))
    assert_error(r, 401, "UNAUTHORIZED")
    assert message(r) == (f"{revoked} was revoked: ask a namespace admin for a new robot "
                          "account"), describe(r)
    # a wrong secret says nothing about the robot's state
    r = get_token(reg, auth=(revoked, secret2 + "x"))
    assert_error(r, 401, "UNAUTHORIZED")
    assert message(r) == "invalid username or password", describe(r)
