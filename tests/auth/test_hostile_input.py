"""Hostile input: traversal, NUL and control bytes, unicode, very long strings in user names,
secrets, repository names, tags, digests, scopes and API paths. Never a 500, never a leak."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.http import RawAuth, call, describe, raw_request
from support.oci import assert_error, v2

from .authkit import get_token, new_source, post_token, uniq

LEAKS = (
    "Traceback",
    'File "',
    "sqlite",
    "sqlalchemy",
    "/work/",
    "site-packages",
    "argon2",
    "root:x:0:0",
    "$argon2id",
    "BEGIN",
    "PRIVATE KEY",
)

# (every failed login costs the server an argon2 verification: the list is kept short)
HOSTILE_USERNAMES = [
    "../../etc/passwd",
    "admin\x00",
    "ADMIN",
    "ünïcødé-üser-名前",
    "admin\r\nX-Injected: 1",
    "u" * 5000,
    "robot$../../etc/passwd",
    "robot$" + "r" * 3000,
    "robot$",
    "robot$\x00",
]


def assert_no_leak(status: int, body: bytes, context: str, *secrets: str) -> None:
    assert status < 500, f"server error {context}: {status} {body[:600]!r}"
    text = body.decode("utf-8", "replace")
    for needle in (*LEAKS, *[s for s in secrets if s]):
        assert needle not in text, f"{needle!r} leaked {context}: {body[:600]!r}"
    if body.startswith(b"{"):
        json.loads(body)


@pytest.mark.parametrize(
    "username", HOSTILE_USERNAMES, ids=[repr(u)[:40] for u in HOSTILE_USERNAMES]
)
def test_hostile_usernames(world, username):
    """Every endpoint that takes credentials parses them the same way before the check: each
    name goes to one of them (all four for the traversal ones), since every refused login
    costs the server an argon2 verification."""
    reg = world.reg
    password = world.admin_password  # the admin's real password, with the wrong user name
    src = new_source()
    header = RawAuth("Basic " + base64.b64encode(f"{username}:{password}".encode()).decode())
    endpoints = {
        "GET /token": lambda: get_token(
            reg, f"repository:{world.team}/app:pull", auth=header, source=src
        ),
        "GET /v2/": lambda: call(
            "GET", v2(reg, f"{world.team}/app/manifests/v1"), auth=header, source=src
        ),
        "POST /token": lambda: post_token(
            reg,
            source=src,
            grant_type="password",
            username=username,
            password=password,
            service="moorage",
        ),
        "GET /api/v1": lambda: world.api_as(header, source=src)("GET", "users"),
    }
    if "etc/passwd" in username:
        chosen = list(endpoints)
    else:
        chosen = [list(endpoints)[HOSTILE_USERNAMES.index(username) % len(endpoints)]]
    for name in chosen:
        r = endpoints[name]()
        assert r.status_code in (400, 401, 431), f"{name}: {describe(r)}"
        assert_no_leak(r.status_code, r.content, describe(r), password)
        assert world.team_image.body not in r.content
        assert "access_token" not in r.text


def test_hostile_passwords_for_a_real_user(world):
    reg = world.reg
    name, pw = world.new_user()
    src = new_source()
    for bad in (pw + "\x00", pw.upper(), "p" * 5000, "ü" * 50, pw + "\r\n"):
        r = get_token(
            reg,
            auth=RawAuth("Basic " + base64.b64encode(f"{name}:{bad}".encode()).decode()),
            source=src,
        )
        assert r.status_code in (400, 401, 431), describe(r)
        assert_no_leak(r.status_code, r.content, describe(r), pw, bad)


def _paths(team: str) -> list[tuple[str, str]]:
    repo = f"{team}/app"
    zeros = "0" * 64
    return [
        ("GET", "/v2/../../etc/passwd/manifests/latest"),
        ("GET", "/v2/%2e%2e/%2e%2e/etc/passwd/manifests/latest"),
        ("GET", f"/v2/{team}/../../etc/passwd/manifests/latest"),
        ("GET", f"/v2/{repo}/manifests/..%2F..%2F..%2Fetc%2Fpasswd"),
        ("GET", f"/v2/{repo}/manifests/../../../../etc/passwd"),
        ("GET", f"/v2/{repo}/manifests/{'a' * 5000}"),
        ("GET", f"/v2/{repo}/manifests/t%00ag"),
        ("GET", f"/v2/{repo}/manifests/%C3%BC%E2%80%AE"),
        ("GET", f"/v2/{repo}/manifests/sha256:{zeros}%00"),
        ("PUT", f"/v2/{repo}/manifests/..%2Fescape"),
        ("DELETE", f"/v2/{repo}/manifests/..%2F..%2Fv1"),
        ("GET", f"/v2/{repo}/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd"),
        ("GET", f"/v2/{repo}/blobs/sha256:../../../etc/passwd"),
        ("GET", f"/v2/{repo}/blobs/sha256:{'f' * 5000}"),
        ("GET", f"/v2/{repo}/blobs/md5:{zeros}"),
        ("GET", f"/v2/{repo}/blobs/sha256:{zeros[:-1]}G"),
        ("DELETE", f"/v2/{repo}/blobs/sha256:..%2F..%2Fx"),
        ("GET", f"/v2/{repo}/blobs/uploads/..%2F..%2F..%2Fetc%2Fpasswd"),
        ("PATCH", f"/v2/{repo}/blobs/uploads/%00"),
        ("PUT", f"/v2/{repo}/blobs/uploads/x?digest=sha256:..%2F..%2Fx"),
        ("POST", f"/v2/{repo}/blobs/uploads/?mount=sha256:..%2F..&from=..%2F..%2Fetc"),
        ("POST", f"/v2/{repo}/blobs/uploads/?mount=sha256:{zeros}&from={team}%00/app"),
        ("GET", f"/v2/{repo}/referrers/sha256:..%2F.."),
        ("GET", f"/v2/{repo}%00/tags/list"),
        ("GET", f"/v2/{repo}/tags/list?n=-1"),
        ("GET", f"/v2/{repo}/tags/list?n=99999999999999999999"),
        ("GET", f"/v2/{repo}/tags/list?last=..%2F..%2F"),
        ("GET", "/v2/%00/tags/list"),
        ("GET", "/v2/" + "a" * 300 + "/tags/list"),
        ("GET", "/v2/%C3%BCn%C3%AF/tags/list"),
        ("GET", "/v2/_catalog?n=-5"),
        ("GET", "/v2/_catalog?last=%00"),
        ("GET", "/token?service=moorage&scope=repository:../../etc/passwd:pull"),
        ("GET", "/token?service=moorage&scope=repository:%00:pull"),
        ("GET", "/token?service=moorage&scope=" + "a:" * 3000 + "pull"),
        ("GET", f"/token?service=moorage&scope=repository:{repo}:pull%00push"),
        ("GET", "/token?service=%00&scope=registry:catalog:*&offline_token=true"),
        ("GET", "/api/v1/namespaces/..%2F..%2Fetc%2Fpasswd"),
        ("GET", "/api/v1/namespaces/%00"),
        ("PATCH", "/api/v1/users/..%2Fadmin"),
        ("PATCH", "/api/v1/users/admin%00"),
        ("PUT", f"/api/v1/namespaces/{team}/members/..%2F..%2Fadmin"),
        ("DELETE", f"/api/v1/namespaces/{team}/members/%00"),
        ("DELETE", "/api/v1/robots/robot$..%2F..%2Fx"),
        ("GET", "/api/v1/audit?limit=-1&cursor=-5"),
        ("GET", "/api/v1/audit?since=nan&until=inf"),
        ("GET", "/api/v1/audit?limit=99999999999999999999999"),
        ("GET", "/api/v1/audit?actor=%00&repository=..%2F..&action=%27%3B--"),
    ]


def test_hostile_paths(world):
    reg = world.reg
    auth = base64.b64encode(f"admin:{world.admin_password}".encode()).decode()
    team = world.team

    def one(item):
        method, path = item
        out = []
        for headers in ({"Authorization": f"Basic {auth}"}, {}):
            body = b"{}" if method in ("PUT", "PATCH") else None
            if method == "PUT" and "/manifests/" in path:
                headers = {**headers, "Content-Type": "application/vnd.oci.image.manifest.v1+json"}
            status, _hdrs, data = raw_request(reg.url, method, path, body, headers)
            out.append((method, path, bool(headers), status, data))
        return out

    with ThreadPoolExecutor(4) as pool:
        results = [x for batch in pool.map(one, _paths(team)) for x in batch]
    failures = []
    for method, path, authed, status, data in results:
        where = f"{method} {path[:120]} (auth={authed}) -> {status} {data[:300]!r}"
        try:
            assert_no_leak(status, data, where, world.admin_password)
            if "etc/passwd" in path or "etc%2Fpasswd" in path:
                assert status >= 400 or path.startswith("/token"), where
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "users", {"name": "../../etc/passwd", "password": "p" * 12}),
        ("POST", "users", {"name": "x\x00", "password": "p" * 12}),
        ("POST", "users", {"name": 123, "password": "p" * 12}),
        ("POST", "users", {"name": ["a"], "password": {"b": 1}}),
        ("POST", "users", {"name": "ok", "password": "p" * 5000}),
        ("POST", "namespaces", {"name": "../../etc"}),
        ("POST", "namespaces", {"name": "ns\x00"}),
        ("POST", "namespaces", {"name": "ünï"}),
        ("POST", "namespaces", {"name": {"$ne": 1}}),
        ("POST", "robots", {"name": "../../x", "permissions": {"x": ["pull"]}}),
        ("POST", "robots", {"name": "ok", "permissions": {"../../etc": ["pull"]}}),
        ("POST", "robots", {"name": "ok", "permissions": {"ns\x00": ["pull"]}}),
        ("POST", "robots", {"name": "ok", "permissions": {"a/b": ["pull"]}}),
        ("POST", "robots", {"name": "ok", "permissions": {"{ns}": ["pull", 5]}}),
        ("PATCH", "namespaces/{ns}", {"visibility": ["public"]}),
        ("PATCH", "namespaces/{ns}", {"visibility": "../public"}),
        ("PUT", "namespaces/{ns}/members/{user}", {"role": "../admin"}),
        ("PUT", "namespaces/{ns}/members/{user}", {"role": 1}),
        ("PUT", "namespaces/{ns}/members/{user}", {"role": ["admin"]}),
    ],
)
def test_hostile_management_bodies(world, method, path, body):
    """Refused with 400 (or 404), on a namespace and a user of the test's own."""
    api = world.api
    ns = api.create_namespace()
    user, _pw = api.create_user()
    if body.get("name") == "ok":
        body = {**body, "name": uniq("ok")}
    if isinstance(body.get("permissions"), dict):
        body = {**body, "permissions": {k.format(ns=ns): v for k, v in body["permissions"].items()}}
    r = api(method, path.format(ns=ns, user=user), json=body)
    assert_no_leak(r.status_code, r.content, describe(r), world.admin_password)
    assert_error(r, (400, 404))
    info = api.ok("GET", f"namespaces/{ns}")
    assert info["visibility"] == "private" and info["members"] == [], info


def test_flags_must_be_booleans(world):
    """`"disabled": "no"`, `"robot_only_push": "false"`, `"admin": "false"` are not booleans:
    refused, not read as true."""
    api = world.api
    name, _pw = api.create_user()
    ns = api.create_namespace()
    problems = []
    r = api("PATCH", f"users/{name}", json={"disabled": "no"})
    users = {u["name"]: u for u in api.ok("GET", "users")["users"]}
    if r.status_code != 400 or users[name]["disabled"]:
        problems.append(f"{describe(r)} -> user now disabled={users[name]['disabled']}")
    r = api("PATCH", f"namespaces/{ns}", json={"robot_only_push": "false"})
    info = api.ok("GET", f"namespaces/{ns}")
    if r.status_code != 400 or info["robot_only_push"]:
        problems.append(f"{describe(r)} -> robot_only_push={info['robot_only_push']}")
    new = uniq("notadmin")
    r = api("POST", "users", json={"name": new, "password": "p" * 12, "admin": "false"})
    users = {u["name"]: u for u in api.ok("GET", "users")["users"]}
    if r.status_code != 400 or (new in users and users[new]["admin"]):
        problems.append(f"{describe(r)} -> created server admin={users.get(new, {}).get('admin')}")
    assert not problems, "\n".join(problems)


def test_oversized_requests(world):
    api = world.api
    big = {"name": uniq("big"), "password": "p" * 12, "pad": "x" * (200 * 1024)}
    r = api("POST", "users", json=big)
    assert r.status_code in (400, 413), describe(r)
    assert_no_leak(r.status_code, r.content, describe(r))
    r = call("GET", v2(world.reg, ""), headers={"Authorization": "Basic " + "A" * 20000})
    assert r.status_code in (400, 401, 431), describe(r)
    r = call("GET", v2(world.reg, ""), headers={"Authorization": "Bearer " + "A" * 7000})
    assert r.status_code in (400, 401, 431), describe(r)
    r = post_token(
        world.reg,
        grant_type="password",
        username="u" * 100_000,
        password="x",
        service="moorage",
        source=new_source(),
    )
    assert r.status_code in (400, 401, 413), describe(r)
    assert_no_leak(r.status_code, r.content, describe(r))
