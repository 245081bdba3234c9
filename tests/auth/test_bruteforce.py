"""Login throttling: more than 10 failed logins for one account, or from one address, within
5 minutes -> 429 TOOMANYREQUESTS with Retry-After, even with the right password.

Failed-login counters are per account and per client address; every test here uses accounts
and loopback source addresses (127.x.y.z) of its own.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .authkit import (
    assert_error,
    call,
    describe,
    find_events,
    get_token,
    new_source,
    post_token,
    uniq,
    v2,
)

LIMIT = 10


def assert_throttled(r) -> int:
    assert_error(r, 429, "TOOMANYREQUESTS")
    retry = r.headers.get("Retry-After")
    assert retry is not None and retry.isdigit(), describe(r)
    assert 0 < int(retry) <= 300, describe(r)
    return int(retry)


def test_failed_logins_for_one_account(world):
    reg = world.reg
    name, pw = world.new_user()
    # ten wrong passwords, in parallel, each from another address: only the account's counter
    # reaches the limit
    with ThreadPoolExecutor(5) as pool:
        statuses = list(
            pool.map(
                lambda i: (
                    get_token(reg, auth=(name, f"guess-{i}"), source=new_source()).status_code
                ),
                range(LIMIT),
            )
        )
    assert statuses == [401] * LIMIT, statuses
    r = get_token(reg, auth=(name, "guess-11"), source=new_source())
    assert r.status_code in (401, 429), describe(r)

    # now even the right password is refused, wherever it comes from and whatever the endpoint
    assert_throttled(get_token(reg, auth=(name, pw), source=new_source()))
    assert_throttled(call("GET", v2(reg, ""), auth=(name, pw), source=new_source()))
    assert_throttled(
        call("GET", v2(reg, f"{world.team}/app/tags/list"), auth=(name, pw), source=new_source())
    )
    assert_throttled(
        post_token(
            reg,
            source=new_source(),
            grant_type="password",
            username=name,
            password=pw,
            service="moorage",
        )
    )
    assert_throttled(world.api_as((name, pw), source=new_source())("GET", "namespaces"))
    # other accounts are not affected
    assert get_token(reg, auth=world.users["reader"]).status_code == 200
    # the refusals are audited
    events = find_events(
        world.api, actor=name, action="login", outcome="denied", min_count=LIMIT + 1
    )
    assert len(events) >= LIMIT + 1, events
    assert pw not in str(events)


def test_failed_logins_from_one_address(world):
    reg = world.reg
    src = new_source()
    name, pw = world.new_user()
    # ten failures from one address, for ten different (unknown) accounts, through every
    # endpoint that takes credentials
    for i in range(LIMIT):
        who, secret = f"robot${uniq('nobody')}", f"wrong-{i}"
        kind = i % 4
        if kind == 0:
            r = get_token(reg, auth=(who, secret), source=src)
        elif kind == 1:
            r = call("GET", v2(reg, ""), auth=(who, secret), source=src)
        elif kind == 2:
            r = post_token(
                reg,
                source=src,
                grant_type="password",
                username=who,
                password=secret,
                service="moorage",
            )
        else:
            r = world.api_as((who, secret), source=src)("GET", "namespaces")
        assert r.status_code == 401, describe(r)

    # a real account with its right password, from that address: refused
    assert_throttled(get_token(reg, auth=(name, pw), source=src))
    assert_throttled(call("GET", v2(reg, ""), auth=(name, pw), source=src))
    # the same account from another address: fine
    assert get_token(reg, auth=(name, pw), source=new_source()).status_code == 200
    # anonymous tokens need no login and are not throttled
    assert get_token(reg, source=src).status_code == 200


def test_failures_below_the_limit_do_not_block(world):
    reg = world.reg
    name, pw = world.new_user()
    src = new_source()
    for i in range(LIMIT - 2):
        assert get_token(reg, auth=(name, f"typo-{i}"), source=src).status_code == 401
    assert get_token(reg, auth=(name, pw), source=src).status_code == 200
