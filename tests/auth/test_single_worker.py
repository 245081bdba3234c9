"""On a one-worker server every change made through the API clears the worker's caches, so its
effect can be checked at once, even for principals that logged in a moment before."""

from __future__ import annotations

import time

from support.http import call, describe
from support.oci import assert_error, v2

from .authkit import (
    assert_unauthorized,
    get_manifest,
    get_token,
    new_password,
    new_source,
    push_image,
)

FREE = 5  # failures before the first lockout


def test_revoked_robot_that_had_logged_in_is_refused_at_once(single):
    reg, api = single.reg, single.api
    ns = api.create_namespace()
    push_image(reg, f"{ns}/app", "v1", single.admin)
    robot, secret, _ = api.create_robot({ns: ["pull"]})
    creds = (robot, secret)
    assert get_token(reg, auth=creds).status_code == 200
    assert get_manifest(reg, f"{ns}/app", "v1", creds).status_code == 200
    assert api("DELETE", f"robots/{robot}").status_code == 204
    src = new_source()
    assert_error(get_token(reg, auth=creds, source=src), 401, "UNAUTHORIZED")
    assert_unauthorized(get_manifest(reg, f"{ns}/app", "v1", creds, source=src))


def test_disabled_user_that_had_logged_in_is_refused_at_once(single):
    reg, api = single.reg, single.api
    name, pw = api.create_user()
    assert get_token(reg, auth=(name, pw)).status_code == 200
    assert call("GET", v2(reg, ""), auth=(name, pw)).status_code == 200
    api.ok("PATCH", f"users/{name}", json={"disabled": True})
    src = new_source()
    assert_error(get_token(reg, auth=(name, pw), source=src), 401, "UNAUTHORIZED")
    assert_unauthorized(call("GET", v2(reg, ""), auth=(name, pw), source=src))


def test_old_password_is_refused_at_once_after_a_change(single):
    reg, api = single.reg, single.api
    name, old = api.create_user()
    assert get_token(reg, auth=(name, old)).status_code == 200
    new = new_password()
    api.ok("PATCH", f"users/{name}", json={"password": new})
    src = new_source()
    assert_error(get_token(reg, auth=(name, old), source=src), 401, "UNAUTHORIZED")
    assert get_token(reg, auth=(name, new)).status_code == 200


def test_throttle_applies_to_a_password_that_logged_in_recently(single):
    """After 5 failures for an account from an address, its right password is refused there too,
    also when that password logged in successfully from there a moment earlier (a remembered
    login must not bypass the lock: the attacker may be the one who just guessed it)."""
    reg, api = single.reg, single.api
    name, pw = api.create_user()
    src = new_source()
    assert get_token(reg, auth=(name, pw), source=src).status_code == 200
    for i in range(FREE - 1):
        assert_error(get_token(reg, auth=(name, f"guess-{i}"), source=src), 401, "UNAUTHORIZED")
    # the fifth failure locks the pair for 1 s, the seventh for 4 s (room for a slow box)
    for i in range(3):
        if i:
            time.sleep(2 ** (i - 1) + 0.1)  # until the previous lock (1 s, 2 s) is over
        assert_error(get_token(reg, auth=(name, f"guess-x{i}"), source=src), 401, "UNAUTHORIZED")
    r = get_token(reg, auth=(name, pw), source=src)
    assert_error(r, 429, "TOOMANYREQUESTS")
    assert r.headers.get("Retry-After"), describe(r)
