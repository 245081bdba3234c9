"""Rate limits through a real server with two workers: `moorage ratelimit set` budgets pulls,
pushes and logins per robot, user, namespace (per repository) and anonymous address; over
budget a client gets 429 TOOMANYREQUESTS with Retry-After on every worker (the bucket lives in
the database), others are not slowed, and the budget comes back after Retry-After seconds."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any

import pytest
import requests
from auth.authkit import (
    World,
    build_world,
    get_manifest,
    get_token,
    new_password,
    new_source,
    push_image,
    start_auth_registry,
    start_upload,
    uniq,
)
from support.http import basic_value, call, describe
from support.oci import assert_error
from support.servers import BACKEND

from .test_metrics import pinned_connections, scrape, value
from .test_signatures import cli

CACHE_SECONDS = 0.3
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    password = new_password()
    reg = start_auth_registry(tmp_path_factory.mktemp("ratelimit"), "--workers", "2",
                              admin_password=password,
                              MOORAGE_RATELIMIT_CACHE_SECONDS=str(CACHE_SECONDS))
    try:
        yield build_world(reg, password)
    finally:
        reg.stop()


def _limit(world: World, *args: str) -> None:
    cli(world.reg, "ratelimit", "set", *args)
    time.sleep(CACHE_SECONDS * 4)  # every worker's cache of the limits has expired


def _robot(world: World, *actions: str) -> tuple[str, str]:
    name, secret, _ = world.api.create_robot({world.team: list(actions)})
    return name, secret


def _ratelimited(world: World, kind: str) -> float:
    """`moorage_ratelimited_total{kind}` of the whole server (every node behind a balancer)."""
    nodes = getattr(world.reg, "nodes", [world.reg])
    return sum(value(scrape(node), "moorage_ratelimited_total", kind=kind) or 0.0
               for node in nodes)


def _retry_after(resp: Any) -> int:
    assert_error(resp, 429, "TOOMANYREQUESTS")
    return int(resp.headers["Retry-After"])


def _get(conn: HTTPConnection, path: str, creds: tuple[str, str]) -> tuple[int, str | None]:
    conn.request("GET", path, headers={"Authorization": basic_value(*creds),
                                       "Accept": ACCEPT})
    response = conn.getresponse()
    response.read()
    return response.status, response.getheader("Retry-After")


@pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="pins one node's worker processes")
def test_a_robot_over_its_pull_budget_is_refused_on_every_worker_until_retry_after(
        world: World) -> None:
    robot = _robot(world, "pull")
    other = _robot(world, "pull")
    # One request per 10 s after a burst of 4: the refusal lasts ~10 s after the first request,
    # far longer than the dozen requests below take even on a loaded box.
    _limit(world, robot[0], "--pull", "6/min", "--burst", "4")
    before = _ratelimited(world, "pull")
    path = f"/v2/{world.team}/app/manifests/v1"
    workers = list(pinned_connections(world.reg).values())

    # Requests alternate between the workers: the budget of 4 is spent by both together.
    statuses = [_get(workers[i % 2], path, robot)[0] for i in range(8)]
    first_refused = statuses.index(429)
    # Two buckets of one per worker would let all 8 through.
    assert statuses[:4] == [200] * 4 and first_refused <= 5, statuses
    waits = []
    for conn in workers:
        status, retry = _get(conn, path, robot)
        assert status == 429 and retry is not None, (status, retry)
        assert 1 <= int(retry) <= 10
        waits.append(int(retry))
        assert _get(conn, path, other)[0] == 200  # another principal is not slowed

    time.sleep(max(waits) + 0.2)
    assert _get(workers[0], path, robot)[0] == 200
    assert _ratelimited(world, "pull") - before >= 3


def test_the_refusal_names_the_limit_and_is_audited_once_per_window(world: World) -> None:
    robot = _robot(world, "pull")
    _limit(world, robot[0], "--pull", "1/h")
    assert get_manifest(world.reg, f"{world.team}/app", "v1", robot).status_code == 200
    refused = [get_manifest(world.reg, f"{world.team}/app", "v1", robot) for _ in range(3)]
    wait = _retry_after(refused[0])
    assert 3500 <= wait <= 3600
    [error] = refused[0].json()["errors"]
    assert error["message"].startswith(f"pull rate limit of robot {robot[0]} (1/h, burst 1) "
                                       "exceeded: retry in ")
    time.sleep(1.0)
    deadline = time.monotonic() + 10
    while not (events := world.api.audit(action="ratelimit.pull", actor=robot[0])):
        assert time.monotonic() < deadline, "no ratelimit.pull audit event"
        time.sleep(0.3)
    time.sleep(1.0)
    events = world.api.audit(action="ratelimit.pull", actor=robot[0])
    assert len(events) == 1 and events[0]["outcome"] == "denied", events


def test_push_and_pull_budgets_are_separate_and_an_upload_in_progress_finishes(
        world: World) -> None:
    robot = _robot(world, "pull", "push")
    _limit(world, robot[0], "--push", "1/h", "--pull", "100/min")
    repo = f"{world.team}/pushed{uniq('')}"
    started = start_upload(world.reg, repo, robot)
    assert started.status_code == 202, describe(started)
    _retry_after(start_upload(world.reg, repo, robot))
    data = b"layer bytes of an upload that began within budget"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = started.headers["Location"]
    url = location if location.startswith("http") else world.reg.url + location
    done = call("PUT", url, params={"digest": digest}, data=data, auth=robot,
                headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, describe(done)
    for _ in range(5):
        assert get_manifest(world.reg, f"{world.team}/app", "v1", robot).status_code == 200


def test_a_namespace_limit_applies_to_every_principal_per_repository(world: World) -> None:
    ns = world.api.create_namespace(uniq("rl"), "private")
    push_image(world.reg, f"{ns}/one", "v1", world.admin)
    push_image(world.reg, f"{ns}/two", "v1", world.admin)
    robots = [world.api.create_robot({ns: ["pull"]}) for _ in range(2)]
    _limit(world, ns, "--pull", "2/h")
    for name, secret, _ in robots:
        creds = (name, secret)
        got = [get_manifest(world.reg, f"{ns}/one", "v1", creds).status_code for _ in range(3)]
        assert got == [200, 200, 429], (name, got)
        assert get_manifest(world.reg, f"{ns}/two", "v1", creds).status_code == 200
    # The limit is the namespace's: a repository elsewhere is not counted.
    assert get_manifest(world.reg, f"{world.team}/app", "v1", world.admin).status_code == 200


@pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="the balancer hides the client's address")
def test_anonymous_clients_are_limited_per_address(world: World) -> None:
    _limit(world, "--anonymous", "--pull", "2/h")
    try:
        repo = f"{world.pub}/app"
        first, second = new_source(), new_source()

        def pull(source: str) -> Any:
            r = get_token(world.reg, f"repository:{repo}:pull", source=source)
            assert r.status_code == 200, describe(r)
            bearer = {"Authorization": "Bearer " + r.json()["token"]}
            return call("GET", f"{world.reg.url}/v2/{repo}/manifests/v1", source=source,
                        headers={**bearer, "Accept": ACCEPT})

        assert [pull(first).status_code for _ in range(2)] == [200, 200]
        _retry_after(pull(first))
        assert pull(second).status_code == 200
        # A signed-in user is not anonymous: the default does not apply.
        assert get_manifest(world.reg, repo, "v1", world.admin, source=first).status_code == 200
    finally:
        cli(world.reg, "ratelimit", "remove", "--anonymous")


def test_the_login_limit_refuses_token_requests_before_checking_the_password(
        world: World) -> None:
    name, password = world.api.create_user()
    other = world.api.create_user()
    _limit(world, name, "--login", "2/h")
    statuses = [get_token(world.reg, auth=(name, password)).status_code for _ in range(2)]
    assert statuses == [200, 200]
    refused = get_token(world.reg, auth=(name, password))
    assert 1700 <= _retry_after(refused) <= 1800  # one interval of 2/h
    assert get_token(world.reg, auth=(name, "a-wrong-password")).status_code == 429
    assert get_token(world.reg, auth=other).status_code == 200
    assert _ratelimited(world, "login") >= 2


def test_a_web_ui_sign_in_spends_the_same_login_budget(world: World) -> None:
    name, password = world.api.create_user()
    _limit(world, name, "--login", "2/h")
    base = world.reg.url
    assert get_token(world.reg, auth=(name, password)).status_code == 200

    def sign_in() -> int:
        session = requests.Session()  # a new visitor each time (a CSRF token names its visitor)
        form = session.get(base + "/ui/login", timeout=60)
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token, "the sign-in page has no CSRF token"
        return session.post(base + "/ui/login", data={"username": name, "password": password,
                                                      "csrf": token.group(1)},
                            allow_redirects=False, timeout=60).status_code

    assert sign_in() == 303  # the second login of the hour
    assert sign_in() == 429  # the third: /token and the UI share the budget
    assert get_token(world.reg, auth=(name, password)).status_code == 429


def test_list_shows_the_limits_and_bad_rates_are_refused_clearly(world: World) -> None:
    robot = _robot(world, "pull")
    cli(world.reg, "ratelimit", "set", robot[0], "--pull", "600/min", "--push", "60/min",
        "--burst", "20")
    listing = cli(world.reg, "ratelimit", "list", "--json").stdout
    rows = json.loads(listing.splitlines()[-1])
    assert {"kind": "robot", "target": robot[0], "pull": "600/min", "push": "60/min",
            "login": None, "burst": 20} in rows
    table = cli(world.reg, "ratelimit", "list").stdout
    assert robot[0] in table and "600/min" in table

    bad = cli(world.reg, "ratelimit", "set", robot[0], "--pull", "10/fortnight", code=1)
    assert "invalid rate '10/fortnight': write N/s, N/min or N/h" in bad.output
    none = cli(world.reg, "ratelimit", "set", robot[0], code=1)
    assert "give at least one of --pull, --push, --login" in none.output
    unknown = cli(world.reg, "ratelimit", "set", "robot$nobody-here", "--pull", "1/s", code=1)
    assert "no robot robot$nobody-here" in unknown.output
    api = world.api("PUT", f"ratelimits/{robot[0]}", json={"pull": "fast"})
    assert_error(api, 400, "UNSUPPORTED")
    assert "invalid rate 'fast'" in api.json()["errors"][0]["message"]
    anonymous = world.api("PUT", "ratelimits/*", json={"pull": "5/s"})
    assert anonymous.status_code == 200, describe(anonymous)
    assert anonymous.json()["kind"] == "anonymous"
    assert world.api("DELETE", "ratelimits/*").status_code == 204
    outsider = world.api_as(world.outsider)("GET", "ratelimits")
    assert outsider.status_code == 403, describe(outsider)
