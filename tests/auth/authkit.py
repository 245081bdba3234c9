"""Helpers of the access-control tests: auth-enabled servers, tokens, the management API, a
populated server, the CLI, and small assertion helpers (HTTP, OCI and server plumbing is in
tests/support).
"""

from __future__ import annotations

import base64
import json
import random
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from support.http import Bearer, add_query, call, describe
from support.oci import assert_error, digest_of, make_image, uploads_url, v2
from support.servers import Server, run_moorage, start_registry

SERVICE = "moorage"
ADMIN = "admin"


# ----------------------------------------------------------------------------------------------
# servers


def start_auth_registry(
    tmp_path: Path, *args: str, admin_password: str | None = None, **env: str
) -> Server:
    """Start a fresh auth-enabled server (support.servers.start_registry(auth=True)).

    admin_password: the first admin's password (MOORAGE_ADMIN_PASSWORD); None leaves the variable
    empty so that the server generates one and prints it.
    """
    env = {"MOORAGE_ADMIN_PASSWORD": admin_password or "", **env}
    return start_registry(tmp_path, *args, auth=True, **env)


# ----------------------------------------------------------------------------------------------
# names and secrets


def uniq(prefix: str = "u") -> str:
    """A fresh lowercase name valid as a user, namespace and robot name."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def new_password() -> str:
    return "pw-" + uuid.uuid4().hex


def new_source() -> str:
    """A loopback address of our own (127.a.b.c): failed-login counters are kept per client
    address, so tests that fail logins on purpose do it from an address nobody else uses."""
    return f"127.{random.randint(2, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


# ----------------------------------------------------------------------------------------------
# HTTP


def parse_challenge(value: str | None) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {...})."""
    assert value, "no WWW-Authenticate header"
    scheme, _, rest = value.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def challenge(resp: requests.Response) -> dict[str, str]:
    """The Bearer challenge parameters of a 401 (asserts it is a Bearer challenge)."""
    scheme, params = parse_challenge(resp.headers.get("WWW-Authenticate"))
    assert scheme == "bearer", describe(resp)
    return params


def assert_unauthorized(resp: requests.Response) -> dict[str, str]:
    """401 + spec body with code UNAUTHORIZED + a Bearer challenge; returns its parameters."""
    assert_error(resp, 401, "UNAUTHORIZED")
    return challenge(resp)


def assert_denied(resp: requests.Response) -> None:
    """403 + spec body with code DENIED."""
    assert_error(resp, 403, "DENIED")


def eventually(check: Callable[[], Any], timeout: float = 6.0, interval: float = 0.25) -> Any:
    """Retry `check` (which asserts) until it passes or `timeout` runs out (policy decisions are
    cached for up to 2 s per worker process; a change made through one worker reaches the
    other within that)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


# ----------------------------------------------------------------------------------------------
# tokens


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_header(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[0]))


def jwt_claims(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


def access_of(token: str) -> dict[tuple[str, str], set[str]]:
    """{(type, name): actions} of a token's `access` claim."""
    return {(a["type"], a["name"]): set(a["actions"]) for a in jwt_claims(token)["access"]}


def get_token(
    reg: Any,
    *scopes: str,
    auth: Any = None,
    source: str | None = None,
    **params: str,
) -> requests.Response:
    """GET /token?service=moorage&scope=...&scope=..."""
    query: list[tuple[str, str]] = [("service", SERVICE)]
    query += [("scope", s) for s in scopes]
    query += list(params.items())
    return call("GET", f"{reg.url}/token", params=query, auth=auth, source=source)


def token(reg: Any, auth: Any, *scopes: str) -> str:
    """An access token (asserts 200); auth None: anonymous."""
    r = get_token(reg, *scopes, auth=auth)
    assert r.status_code == 200, describe(r)
    return r.json()["token"]


def bearer(reg: Any, auth: Any, *scopes: str) -> Bearer:
    return Bearer(token(reg, auth, *scopes))


def post_token(reg: Any, source: str | None = None, **form: str) -> requests.Response:
    return call("POST", f"{reg.url}/token", data=form, source=source)


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def all_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push,delete"


# ----------------------------------------------------------------------------------------------
# registry operations with credentials


def start_upload(reg: Any, repo: str, auth: Any, **params: str) -> requests.Response:
    url = uploads_url(reg, repo)
    if params:
        url = add_query(url, params)
    return call("POST", url, auth=auth, headers={"Content-Length": "0"})


def push_blob(reg: Any, repo: str, data: bytes, auth: Any) -> requests.Response:
    """POST + PUT; returns the first response that is not the expected 202, or the final one."""
    r = start_upload(reg, repo, auth)
    if r.status_code != 202:
        return r
    loc = urljoin(r.url, r.headers["Location"])
    return call(
        "PUT",
        add_query(loc, {"digest": digest_of(data)}),
        data=data,
        auth=auth,
        headers={"Content-Type": "application/octet-stream"},
    )


def put_manifest(reg: Any, repo: str, ref: str, m: Any, auth: Any) -> requests.Response:
    return call(
        "PUT",
        v2(reg, f"{repo}/manifests/{ref}"),
        data=m.body,
        auth=auth,
        headers={"Content-Type": m.media_type},
    )


def get_manifest(
    reg: Any, repo: str, ref: str, auth: Any = None, method: str = "GET", source: str | None = None
) -> requests.Response:
    return call(
        method,
        v2(reg, f"{repo}/manifests/{ref}"),
        auth=auth,
        source=source,
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.oci.image.index.v1+json"
        },
    )


def get_blob(
    reg: Any, repo: str, digest: str, auth: Any = None, method: str = "GET"
) -> requests.Response:
    return call(method, v2(reg, f"{repo}/blobs/{digest}"), auth=auth)


def push_image(reg: Any, repo: str, tag: str, auth: Any, m: Any = None) -> Any:
    """Push an image (blobs + manifest under `tag`); asserts every step; returns it."""
    m = m or small_image()
    for b in m.blobs:
        r = push_blob(reg, repo, b.data, auth)
        assert r.status_code == 201, describe(r)
    r = put_manifest(reg, repo, tag, m, auth)
    assert r.status_code == 201, describe(r)
    return m


def small_image() -> Any:
    """An image with a random config and one random small layer."""
    return make_image(layers=1)


def try_push(reg: Any, repo: str, auth: Any) -> requests.Response:
    """Push one small image; the first failing response, or the manifest PUT's."""
    m = small_image()
    for b in m.blobs:
        r = push_blob(reg, repo, b.data, auth)
        if r.status_code != 201:
            return r
    return put_manifest(reg, repo, uniq("t"), m, auth)


# ----------------------------------------------------------------------------------------------
# management API


@dataclass
class Api:
    """/api/v1 calls as one principal."""

    reg: Any
    auth: Any
    source: str | None = None

    def __call__(self, method: str, path: str, **kw: Any) -> requests.Response:
        return call(
            method,
            f"{self.reg.url}/api/v1/{path.lstrip('/')}",
            auth=self.auth,
            source=self.source,
            **kw,
        )

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self(method, path, **kw)
        assert r.status_code == status, describe(r)
        return r.json() if r.content else None

    def create_user(
        self, name: str | None = None, password: str | None = None, admin: bool = False
    ) -> tuple[str, str]:
        name = name or uniq("u")
        password = password or new_password()
        self.ok("POST", "users", 201, json={"name": name, "password": password, "admin": admin})
        return name, password

    def create_namespace(self, name: str | None = None, visibility: str = "private") -> str:
        name = name or uniq("ns")
        self.ok("POST", "namespaces", 201, json={"name": name, "visibility": visibility})
        return name

    def set_member(self, namespace: str, user: str, role: str) -> None:
        self.ok("PUT", f"namespaces/{namespace}/members/{user}", json={"role": role})

    def create_robot(
        self,
        permissions: dict[str, list[str]],
        name: str | None = None,
        expires_in: float | None = None,
    ) -> tuple[str, str, dict]:
        body: dict[str, Any] = {"name": name or uniq("r"), "permissions": permissions}
        if expires_in is not None:
            body["expires_in"] = expires_in
        created = self.ok("POST", "robots", 201, json=body)
        return created["name"], created["secret"], created

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        return self.ok("GET", "audit", params={k: v for k, v in filters.items() if v is not None})[
            "events"
        ]


AUDIT_WAIT = 5.0  # request events are queued and written by a background task "within moments"


def find_events(
    api: Api, timeout: float = AUDIT_WAIT, min_count: int = 1, **filters: Any
) -> list[dict[str, Any]]:
    """Audit events matching the API filters, waiting until there are at least `min_count`
    (events of requests are written asynchronously, pulls in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        events = api.audit(limit=1000, **filters)
        if len(events) >= min_count or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def await_event(
    api: Api, filters: dict[str, Any], timeout: float = AUDIT_WAIT, **match: Any
) -> dict[str, Any]:
    """The newest audit event matching the API `filters` and the field values `match`,
    waiting for it to be written; fails with the events seen when it does not appear."""
    deadline = time.monotonic() + timeout
    while True:
        events = api.audit(limit=1000, **filters)
        found = [e for e in events if all(e.get(k) == v for k, v in match.items())]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no audit event {match} among {filters} within {timeout}s: "
                f"{json.dumps(events, indent=1)[:4000]}"
            )
        time.sleep(0.2)


def assert_no_event(api: Api, filters: dict[str, Any], wait: float = 2.0, **match: Any) -> None:
    """No audit event matching appears within `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        events = api.audit(limit=1000, **filters)
        found = [e for e in events if all(e.get(k) == v for k, v in match.items())]
        assert not found, f"unexpected audit event(s): {json.dumps(found, indent=1)[:3000]}"
        if time.monotonic() > deadline:
            return
        time.sleep(0.25)


# ----------------------------------------------------------------------------------------------
# a populated server


ROLES = ("admin", "maintainer", "developer", "reader")
ROLE_ACTIONS = {
    "admin": {"pull", "push", "delete"},
    "maintainer": {"pull", "push", "delete"},
    "developer": {"pull", "push"},
    "reader": {"pull"},
}


@dataclass
class World:
    """A shared auth-enabled server (two workers) with a few accounts and namespaces.

    team: private namespace with one member per role (users[role]); pub: public namespace;
    outsider: a user in no namespace. team/app:v1 and pub/app:v1 hold an image each.
    Tests that change permissions create their own users and namespaces.
    """

    reg: Any
    admin_password: str
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    outsider: tuple[str, str] = ("", "")
    team: str = ""
    pub: str = ""
    team_image: Any = None
    pub_image: Any = None

    @property
    def admin(self) -> tuple[str, str]:
        return (ADMIN, self.admin_password)

    @property
    def api(self) -> Api:
        return Api(self.reg, self.admin)

    def api_as(self, creds: Any, source: str | None = None) -> Api:
        return Api(self.reg, creds, source)

    def new_user(self, admin: bool = False) -> tuple[str, str]:
        return self.api.create_user(admin=admin)

    def new_users(self, n: int) -> list[tuple[str, str]]:
        """n users created concurrently (each costs an argon2 hash on the server)."""
        with ThreadPoolExecutor(max(n, 1)) as pool:
            return list(pool.map(lambda _i: self.api.create_user(), range(n)))


def build_world(reg: Any, admin_password: str) -> World:
    w = World(reg=reg, admin_password=admin_password)
    api = w.api
    names = {role: uniq(role[:5]) for role in ROLES}
    names["outsider"] = uniq("outs")
    with ThreadPoolExecutor(len(names)) as pool:
        created = dict(
            zip(names, pool.map(lambda n: api.create_user(n), names.values()), strict=True)
        )
    w.outsider = created.pop("outsider")
    w.users = created
    w.team = api.create_namespace(uniq("team"), "private")
    w.pub = api.create_namespace(uniq("pub"), "public")
    for role, (name, _pw) in w.users.items():
        api.set_member(w.team, name, role)
    w.team_image = push_image(reg, f"{w.team}/app", "v1", w.admin)
    w.pub_image = push_image(reg, f"{w.pub}/app", "v1", w.admin)
    return w


def cli_env(reg: Any) -> dict[str, str]:
    """The MOORAGE_* settings a CLI next to `reg` needs (its database when not in the data dir;
    MOORAGE_ADMIN_PASSWORD and the like are harmless)."""
    return {k: v for k, v in (reg.env or {}).items() if k.startswith("MOORAGE_")}


def run_processes(
    commands: Iterable[list[str]], env: dict[str, str] | None = None, check: bool = True
) -> list[subprocess.CompletedProcess]:
    """Independent `moorage` processes, run concurrently."""
    cmds = list(commands)
    with ThreadPoolExecutor(len(cmds)) as pool:
        return list(pool.map(lambda a: run_moorage(*a, env=env, check=check), cmds))


def run_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """The `moorage` command line (moorage.cli.app, same argv) run in this process.

    Every interpreter start of `moorage` costs about two seconds here (imports and the
    argon2 hash made at import), so most CLI checks run it in-process; run_moorage() is the
    real command (support.servers.run_moorage).
    """
    from typer.testing import CliRunner

    from moorage.cli import app

    result = CliRunner(env=env).invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"moorage {' '.join(args)} raised {result.exception!r}\nstdout: {result.stdout}"
        ) from result.exception
    p = subprocess.CompletedProcess(
        ["moorage", *args], result.exit_code, result.stdout, result.stderr
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"moorage {' '.join(args)} -> {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
        )
    return p


def run_cli_many(
    commands: Iterable[list[str]], env: dict[str, str] | None = None, check: bool = True
) -> list[subprocess.CompletedProcess]:
    """Several CLI commands, one after the other."""
    return [run_cli(*a, env=env, check=check) for a in commands]


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of a `moorage` table (a header line, a rule, then rows) as {HEADER: cell}:
    cells are cut at the columns where the header's names start."""
    lines = [line for line in text.splitlines() if line.strip()]
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    header = lines[rule - 1]
    # A header may hold a space ("DRY RUN"): a name starts only after two spaces.
    starts = [0, *(m.end() for m in re.finditer(r" {2,}(?=\S)", header))]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {n: line[a:b].strip() for n, a, b in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines[rule + 1 :]
    ]


def rfc3339_seconds(value: str) -> float:
    """Unix seconds of an RFC 3339 time the API or the CLI printed (`…Z`); fails otherwise."""
    assert isinstance(value, str) and value.endswith("Z") and "T" in value, value
    return datetime.fromisoformat(value).timestamp()
