"""Login throttling (src/moorage/auth/throttle.py): failures are counted per (account, client
address). After 5 failures the pair is locked for 1, 2, 4 ... s (at most 5 minutes): 429
TOOMANYREQUESTS with Retry-After, even with the right password. Failures of other accounts never
stop a right password from being checked; past a per-address ceiling of failures, each further
failure from that address locks its own pair for the maximum at once. Robot secrets are never
throttled. Behind trusted proxies (MOORAGE_TRUSTED_PROXIES) the address is X-Forwarded-For's.

Tests on the shared server use accounts and loopback source addresses (127.x.y.z) of their own.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin

import pytest
from support.http import add_query, call, describe
from support.oci import assert_error, digest_of, v2

from .authkit import (
    Api,
    await_event,
    find_events,
    get_token,
    new_password,
    new_source,
    post_token,
    uniq,
)

FREE = 5  # failures before the first lockout
WAIT = re.compile(r"must wait (\d+) s")


def assert_throttled(r, at_most: int = 300) -> int:
    """429 TOOMANYREQUESTS with a Retry-After of whole seconds; returns it."""
    assert_error(r, 429, "TOOMANYREQUESTS")
    retry = r.headers.get("Retry-After")
    assert retry is not None and retry.isdigit(), describe(r)
    assert 0 < int(retry) <= at_most, describe(r)
    return int(retry)


def login(reg, creds, src: str, headers: dict | None = None):
    """GET /token with Basic credentials from `src` (and extra headers)."""
    return call("GET", f"{reg.url}/token", params={"service": "moorage"}, auth=creds,
                source=src, headers=headers or {})


def fail(reg, name: str, src: str, headers: dict | None = None) -> int | None:
    """One wrong password (401, asserted); returns the lockout it announces, if any."""
    r = login(reg, (name, "wrong-" + uniq()), src, headers)
    assert_error(r, 401, "UNAUTHORIZED")
    m = WAIT.search(r.json()["errors"][0]["message"])
    return int(m.group(1)) if m else None


def ok(r) -> None:
    assert r.status_code == 200, describe(r)


def test_lockouts_grow_per_account_and_address(world):
    reg = world.reg
    name, pw = world.new_user()
    src, elsewhere = new_source(), new_source()
    # the first failures cost nothing; the fifth locks the pair for 1 s
    assert [fail(reg, name, src) for _ in range(FREE - 1)] == [None] * (FREE - 1)
    assert fail(reg, name, src) == 1
    assert_throttled(get_token(reg, auth=(name, pw), source=src), at_most=1)
    # the same account from another address is not affected
    ok(get_token(reg, auth=(name, pw), source=elsewhere))
    # each further failure doubles the lockout: 2, 4, 8 s
    for expected in (2, 4, 8):
        time.sleep(expected / 2 + 0.1)
        assert fail(reg, name, src) == expected
    # while locked, the right password is refused on every endpoint that takes credentials
    first = assert_throttled(get_token(reg, auth=(name, pw), source=src), at_most=8)
    assert first >= 5, first  # the lock grows with each failure rather than restarting
    assert_throttled(call("GET", v2(reg, ""), auth=(name, pw), source=src))
    assert_throttled(
        post_token(reg, source=src, grant_type="password", username=name, password=pw,
                   service="moorage")
    )
    assert_throttled(world.api_as((name, pw), source=src)("GET", "namespaces"))
    # the refusals are audited, without the password
    events = find_events(world.api, actor=name, action="login", outcome="denied",
                         min_count=FREE + 3 + 2)
    assert len(events) >= FREE + 3 + 2, events
    assert pw not in str(events)


def test_a_success_clears_the_pair(world):
    reg = world.reg
    name, pw = world.new_user()
    src = new_source()
    for _ in range(FREE - 1):
        assert fail(reg, name, src) is None
    ok(get_token(reg, auth=(name, pw), source=src))
    # counting starts again: four more typos lock nothing, the fifth locks for 1 s
    for _ in range(FREE - 1):
        assert fail(reg, name, src) is None
    assert fail(reg, name, src) == 1
    time.sleep(1.2)
    ok(get_token(reg, auth=(name, pw), source=src))


def test_concurrent_failures_are_all_counted(world):
    """Failures arriving at once, on both workers, each count (the counter is one upsert)."""
    reg = world.reg
    name, pw = world.new_user()
    src = new_source()
    # (no more than FREE: a later attempt could meet the lock and be answered 429)
    with ThreadPoolExecutor(FREE) as pool:
        announced = list(pool.map(lambda _i: fail(reg, name, src), range(FREE)))
    assert sorted(announced, key=str) == [1] + [None] * (FREE - 1), announced
    assert_throttled(get_token(reg, auth=(name, pw), source=src))
    ok(get_token(reg, auth=(name, pw), source=new_source()))


def test_failures_of_others_never_block_a_right_password(world):
    """Ten typos by one user behind a shared address (a NAT, a load balancer) lock only that user
    there: everyone else from that address, the admin and robots included, still logs in."""
    reg = world.reg
    shared = new_source()
    clumsy, _ = world.new_user()
    other, other_pw = world.new_user()
    robot, secret, _ = world.api.create_robot({world.team: ["pull"]})
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _i: fail(reg, uniq("nobody"), shared), range(10)))
    assert [fail(reg, clumsy, shared) for _ in range(FREE)][-1] == 1  # clumsy is locked there
    ok(get_token(reg, auth=(other, other_pw), source=shared))
    ok(call("GET", v2(reg, ""), auth=(other, other_pw), source=shared))
    ok(get_token(reg, auth=world.admin, source=shared))
    ok(get_token(reg, f"repository:{world.team}/app:pull", auth=(robot, secret), source=shared))
    # anonymous tokens need no login and are not throttled
    ok(get_token(reg, source=shared))


def test_robot_secrets_are_not_throttled(world):
    reg = world.reg
    src = new_source()
    robot, secret, _ = world.api.create_robot({world.team: ["pull"]})
    for i in range(3 * FREE):
        r = get_token(reg, auth=(robot, f"guess-{i}"), source=src)
        assert_error(r, 401, "UNAUTHORIZED")
        assert "wait" not in r.text, describe(r)
    ok(get_token(reg, auth=(robot, secret), source=src))
    # still audited as failures
    events = find_events(world.api, actor=robot, action="login", outcome="denied",
                         min_count=3 * FREE)
    assert len(events) >= 3 * FREE, events


@pytest.fixture(scope="module")
def ceiling(tmp_path_factory):
    """A server of its own with a low per-address ceiling (6 failures in 5 minutes) that trusts
    127.0.0.1 as a proxy."""
    from .authkit import start_auth_registry

    password = new_password()
    reg = start_auth_registry(
        tmp_path_factory.mktemp("ceiling"), "--workers", "1", admin_password=password,
        MOORAGE_LOGIN_ADDRESS_LIMIT="6", MOORAGE_TRUSTED_PROXIES="127.0.0.1/32, ::1",
    )
    try:
        yield reg, password
    finally:
        reg.stop()


def test_address_ceiling_locks_failing_pairs_at_once_but_checks_right_passwords(ceiling):
    reg, admin_pw = ceiling
    api = Api(reg, ("admin", admin_pw))
    (alice, alice_pw), (bob, bob_pw) = api.create_user(), api.create_user()
    src = new_source()
    # robot failures are not counted towards the ceiling either
    for i in range(8):
        assert_error(get_token(reg, auth=(f"robot${uniq('r')}", f"x{i}"), source=src), 401,
                     "UNAUTHORIZED")
    # six failures for six names: below every per-pair limit, at the address ceiling
    for _ in range(6):
        assert fail(reg, uniq("spray"), src) is None
    # past it, one failure locks its pair for the maximum
    assert fail(reg, alice, src) == 300
    assert assert_throttled(get_token(reg, auth=(alice, alice_pw), source=src)) > 250
    # a right password of an account without failures there is still checked, and accepted
    ok(get_token(reg, auth=(bob, bob_pw), source=src))
    ok(get_token(reg, auth=("admin", admin_pw), source=src))
    # and alice from elsewhere is fine
    ok(get_token(reg, auth=(alice, alice_pw), source=new_source()))


def test_trusted_proxy_forwards_the_client_address(ceiling):
    reg, admin_pw = ceiling
    api = Api(reg, ("admin", admin_pw))
    carol, carol_pw = api.create_user()
    client = f"203.0.113.{int(time.time() * 1000) % 250 + 1}"
    # 127.0.0.1 is trusted: the rightmost untrusted hop is the client (the left one is a claim)
    via_proxy = {"X-Forwarded-For": f"198.51.100.9, {client}"}
    for _ in range(FREE - 1):
        assert fail(reg, carol, "127.0.0.1", via_proxy) is None
    assert fail(reg, carol, "127.0.0.1", via_proxy) == 1
    assert_throttled(login(reg, (carol, carol_pw), "127.0.0.1", via_proxy))
    # the same proxy forwarding another client: not locked
    ok(login(reg, (carol, carol_pw), "127.0.0.1", {"X-Forwarded-For": "203.0.113.251"}))
    # an untrusted peer's X-Forwarded-For is ignored: its own address counts
    untrusted = new_source()
    ok(login(reg, (carol, carol_pw), untrusted, via_proxy))
    # the audit log records the resolved addresses
    await_event(api, {"actor": carol, "action": "login"}, outcome="denied", remote=client)
    await_event(api, {"actor": carol, "action": "login"}, outcome="success", remote=untrusted)
    await_event(api, {"actor": carol, "action": "login"}, outcome="success",
                remote="203.0.113.251")
    # request bodies pass through unchanged, and pushes are audited with the client's address
    admin, forwarded = ("admin", admin_pw), {"X-Forwarded-For": "203.0.113.252"}
    data = os.urandom(300_000)
    repo = f"{api.create_namespace()}/app"
    r = call("POST", v2(reg, f"{repo}/blobs/uploads/"), auth=admin, source="127.0.0.1",
             headers={**forwarded, "Content-Length": "0"})
    assert r.status_code == 202, describe(r)
    r = call("PUT", add_query(urljoin(r.url, r.headers["Location"]), {"digest": digest_of(data)}),
             auth=admin, source="127.0.0.1", data=data,
             headers={**forwarded, "Content-Type": "application/octet-stream"})
    assert r.status_code == 201, describe(r)
    await_event(api, {"repository": repo, "action": "blob.push"}, outcome="success",
                remote="203.0.113.252", reference=digest_of(data))

