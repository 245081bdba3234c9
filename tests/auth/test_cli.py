"""The `moorage` admin commands, run against the data dir of a running server, and the server
honouring what they changed.

Most commands run in-process (moorage.cli.app with the same argv, see authkit.run_cli): every
`moorage` interpreter start costs about two seconds here. `user list` below, `moorage audit`
(test_audit.py) and `user add` / `robot add` (test_server_lifecycle.py) run as real processes.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import time

from support.http import Bearer, call
from support.oci import assert_error, v2
from support.servers import run_moorage

from .authkit import (
    access_of,
    assert_denied,
    assert_unauthorized,
    cli_env,
    eventually,
    get_manifest,
    get_token,
    new_password,
    new_source,
    post_token,
    pull_scope,
    push_image,
    push_scope,
    rfc3339_seconds,
    run_cli,
    table_rows,
    token,
    try_push,
    uniq,
)

SECRET = re.compile(r"secret \(shown once\): (\S+)")
HUMAN_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def _human_seconds(text: str) -> float:
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S UTC"))


def cli(world, *args: str, check: bool = True):
    """`moorage ARGS --data-dir <the world server's data dir>`."""
    return run_cli(
        *args, "--data-dir", str(world.reg.data_dir), env=cli_env(world.reg), check=check
    )


def test_cli_user_add_and_list(world):
    reg = world.reg
    plain, admin = (uniq("cliu"), new_password()), (uniq("clia"), new_password())
    out = cli(world, "user", "add", plain[0], "--password", plain[1])
    assert f"created user {plain[0]}" in out.stdout, out
    assert plain[1] not in out.stdout + out.stderr
    cli(world, "user", "add", admin[0], "--password", admin[1], "--admin")
    bad = cli(world, "user", "add", "Not-Valid", "--password", new_password(), check=False)
    assert bad.returncode != 0 and "error" in bad.stderr.lower(), bad

    # the running server takes the new accounts at once
    assert token(reg, plain)
    assert call("GET", v2(reg, ""), auth=plain).status_code == 200
    assert world.api_as(admin).ok("GET", "users")
    assert_denied(world.api_as(plain)("GET", "users"))
    push_image(reg, f"{plain[0]}/app", "v1", plain)  # a personal namespace, as for any user

    # `user list` as a real process, next to the running server
    listing = run_moorage("user", "list", "--data-dir", str(reg.data_dir), env=cli_env(reg))
    rows = {r["NAME"]: r for r in table_rows(listing.stdout)}
    assert rows[plain[0]]["ADMIN"] == "no" and rows[plain[0]]["STATE"] == "active", listing.stdout
    assert rows[admin[0]]["ADMIN"] == "yes", listing.stdout
    assert rows["admin"]["ADMIN"] == "yes", listing.stdout
    assert HUMAN_TIME.fullmatch(rows[plain[0]]["CREATED"]), listing.stdout
    as_json = {u["name"]: u for u in json.loads(cli(world, "user", "list", "--json").stdout)["users"]}
    assert abs(rfc3339_seconds(as_json[plain[0]]["created_at"]) - time.time()) < 600, as_json
    dup = cli(world, "user", "add", plain[0], "--password", new_password(), check=False)
    assert dup.returncode != 0, dup
    assert get_token(reg, auth=plain).status_code == 200  # the failed duplicate changed nothing


def test_cli_passwd_and_disable(world):
    reg = world.reg
    (u1, old1), (u2, pw2), (u3, pw3) = world.new_users(3)  # never logged in: nothing cached
    new1 = new_password()
    cli(world, "user", "passwd", u1, "--password", new1)
    cli(world, "user", "disable", u2)
    src = new_source()
    assert_error(get_token(reg, auth=(u1, old1), source=src), 401, "UNAUTHORIZED")
    assert get_token(reg, auth=(u1, new1)).status_code == 200
    assert_error(get_token(reg, auth=(u2, pw2), source=src), 401, "UNAUTHORIZED")
    assert_unauthorized(call("GET", v2(reg, ""), auth=(u2, pw2), source=src))
    users = {u["name"]: u for u in world.api.ok("GET", "users")["users"]}
    assert users[u2]["disabled"] is True and users[u1]["disabled"] is False

    # re-enabled; and a refresh token of a user disabled by the CLI stops working at once
    refresh = get_token(reg, auth=(u3, pw3), offline_token="true").json()["refresh_token"]
    cli(world, "user", "disable", u2, "--enable")
    cli(world, "user", "disable", u3)
    assert get_token(reg, auth=(u2, pw2)).status_code == 200
    r = post_token(reg, grant_type="refresh_token", refresh_token=refresh, service="moorage")
    assert_error(r, 401, "UNAUTHORIZED")


def test_cli_namespaces_members_and_settings(world):
    reg = world.reg
    public, private = uniq("clipub"), uniq("clipriv")
    (user,) = world.new_users(1)
    out = cli(world, "namespace", "add", public, "--public")
    assert f"created namespace {public}" in out.stdout, out
    cli(world, "namespace", "add", private)
    cli(world, "namespace", "member", private, user[0], "developer")
    cli(world, "namespace", "member", public, user[0], "maintainer")
    cli(world, "namespace", "set", public, "--robot-only-push")
    assert world.api.ok("GET", f"namespaces/{public}")["visibility"] == "public"
    assert world.api.ok("GET", f"namespaces/{private}")["visibility"] == "private"
    m = push_image(reg, f"{public}/app", "v1", world.admin)
    push_image(reg, f"{private}/app", "v1", world.admin)
    # public: anonymous pull; private: none
    anon = Bearer(token(reg, None, pull_scope(f"{public}/app"), pull_scope(f"{private}/app")))
    assert get_manifest(reg, f"{public}/app", "v1", anon).content == m.body
    assert_unauthorized(get_manifest(reg, f"{private}/app", "v1", anon))
    # developer in private: push yes, delete no
    assert try_push(reg, f"{private}/app", user).status_code == 201
    assert_denied(call("DELETE", v2(reg, f"{private}/app/manifests/v1"), auth=user))
    # maintainer in a robot-only-push namespace: no push
    assert_denied(try_push(reg, f"{public}/app", user))
    # a robot made by the CLI pushes there
    out = cli(world, "robot", "add", uniq("pubbot"), "-n", f"{public}=pull,push")
    robot = re.search(r"robot account: (\S+)", out.stdout).group(1)
    secret = SECRET.search(out.stdout).group(1)
    assert try_push(reg, f"{public}/app", (robot, secret)).status_code == 201

    # membership removed ('none'), and pushes opened to everyone again
    cli(world, "namespace", "member", private, user[0], "none")
    cli(world, "namespace", "set", public, "--anyone-may-push")
    eventually(lambda: assert_denied(get_manifest(reg, f"{private}/app", "v1", user)))
    assert try_push(reg, f"{public}/{uniq('open')}", user).status_code == 201
    # errors are reported, not crashes
    bad = cli(world, "namespace", "member", private, user[0], "overlord", check=False)
    assert bad.returncode != 0 and "error" in bad.stderr.lower(), bad


def test_cli_robots(world):
    reg = world.reg
    team_repo = f"{world.team}/{uniq('bot')}"
    names = [uniq("clibot") for _ in range(3)]
    out = [
        cli(
            world,
            "robot",
            "add",
            names[0],
            "-n",
            f"{world.team}=pull,push",
            "--expires-in-days",
            "1",
            "--description",
            "ci",
        ),
        cli(world, "robot", "add", names[1], "-n", f"{world.team}=pull"),
        cli(world, "robot", "add", names[2], "-n", f"{world.team}=pull,push"),
    ]
    robots = []
    for name, o in zip(names, out, strict=True):
        assert f"robot account: robot${name}" in o.stdout, o.stdout
        match = SECRET.search(o.stdout)
        assert match, o.stdout
        robots.append((f"robot${name}", match.group(1)))
    pusher, puller, unused = robots

    tok = token(reg, pusher, push_scope(team_repo))
    assert access_of(tok) == {("repository", team_repo): {"pull", "push"}}
    assert try_push(reg, team_repo, Bearer(tok)).status_code == 201
    assert get_manifest(reg, f"{world.team}/app", "v1", puller).status_code == 200
    assert_denied(try_push(reg, team_repo, puller))
    r = get_token(reg, pull_scope(team_repo), auth=puller, offline_token="true")
    refresh = r.json()["refresh_token"]

    listing = cli(world, "robot", "list").stdout
    rows = {r["NAME"]: r for r in table_rows(listing)}
    assert rows[pusher[0]]["PERMISSIONS"] == f"{world.team}=pull,push", rows[pusher[0]]
    # `expires` is a readable UTC time about a day ahead, never raw Unix seconds
    expires = rows[pusher[0]]["EXPIRES"]
    assert HUMAN_TIME.fullmatch(expires), rows[pusher[0]]
    assert abs(_human_seconds(expires) - time.time() - 86400) < 600, expires
    assert rows[unused[0]]["EXPIRES"] == "never", rows[unused[0]]
    assert rows[pusher[0]]["DESCRIPTION"] == "ci", rows[pusher[0]]
    assert all(secret not in listing for _n, secret in robots)
    as_json = {r["name"]: r for r in json.loads(cli(world, "robot", "list", "--json").stdout)["robots"]}
    assert abs(rfc3339_seconds(as_json[pusher[0]]["expires_at"]) - time.time() - 86400) < 600
    assert as_json[unused[0]]["expires_at"] is None, as_json[unused[0]]

    cli(world, "robot", "revoke", puller[0])
    cli(world, "robot", "revoke", unused[0])
    # revoked by the CLI: a robot that never logged in is refused at once, and the refresh
    # token of one that did stops working at once
    src = new_source()
    assert_error(get_token(reg, auth=unused, source=src), 401, "UNAUTHORIZED")
    assert_unauthorized(call("GET", v2(reg, ""), auth=unused, source=src))
    r = post_token(
        reg,
        grant_type="refresh_token",
        refresh_token=refresh,
        service="moorage",
        scope=pull_scope(team_repo),
    )
    assert_error(r, 401, "UNAUTHORIZED")
    listing = cli(world, "robot", "list").stdout
    rows = {r["NAME"]: r for r in table_rows(listing)}
    assert rows[puller[0]]["STATE"] == "revoked" and rows[unused[0]]["STATE"] == "revoked", listing
    assert rows[pusher[0]]["STATE"] == "active", listing
    # and the API agrees
    api_rows = {x["name"]: x for x in world.api.ok("GET", "robots")["robots"]}
    assert api_rows[unused[0]]["revoked"] is True, api_rows[unused[0]]
    assert api_rows[pusher[0]]["description"] == "ci", api_rows[pusher[0]]


NO_REGISTRY = "no Moorage registry in "


def test_cli_user_add_in_a_directory_without_a_registry_creates_nothing(tmp_path):
    """The real command, run where there is no ./data: it refuses, naming the path and the
    way to point at a registry, and leaves the directory as it was."""
    assert "MOORAGE_DATA_DIR" not in os.environ and "MOORAGE_DATABASE_URL" not in os.environ
    p = run_moorage("user", "add", "bob", "--password", new_password(), cwd=tmp_path,
                    check=False)
    assert p.returncode == 2, p
    assert NO_REGISTRY + str((tmp_path / "data").resolve()) in p.stderr, p.stderr
    assert "--data-dir" in p.stderr and "--database" in p.stderr, p.stderr
    assert "moorage serve" in p.stderr, p.stderr
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_cli_read_commands_refuse_a_data_dir_without_a_registry(tmp_path):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    for args in (["user", "list"], ["robot", "list"], ["audit", "--jsonl"],
                 ["namespace", "add", "ns"], ["quota", "show", "ns"], ["gc", "--dry-run"],
                 ["tag", "deleted", "ns/app"], ["db", "current"]):
        r = run_cli(*args, "--data-dir", str(empty), check=False)
        assert r.returncode == 2, (args, r)
        assert f"{NO_REGISTRY}{empty.resolve()} (no moorage.db)" in r.stderr, (args, r.stderr)
    assert list(empty.iterdir()) == [], list(empty.iterdir())


def test_cli_refuses_a_database_without_the_moorage_schema(tmp_path):
    """A database that exists but was never migrated (here an empty SQLite file) is not a
    registry either; `db upgrade` is the command that makes it one."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    (tmp_path / "other.db").touch()
    r = run_cli("user", "list", "--database", url, check=False)
    assert r.returncode == 2, r
    assert "no Moorage schema" in r.stderr and "other.db" in r.stderr, r.stderr
    run_cli("db", "upgrade", "--database", url)
    listing = run_cli("user", "list", "--database", url)
    assert listing.stdout.strip() == "no users", listing.stdout


def test_cli_every_data_command_takes_the_same_registry_options():
    """--data-dir, --database, --storage and --config on every command but those that open no
    registry of their own: `version`, `restore` (makes a new embedded data dir from a backup),
    and the clients of a registry URL (`push`, `pull`)."""
    from typer.main import get_command

    from moorage.cli import app

    def leaves(cmd, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from leaves(sub, (*path, name))
        else:
            yield path, cmd

    checked = []
    for path, cmd in leaves(get_command(app)):
        if path in (("version",), ("restore",), ("push",), ("pull",)):
            continue
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert {"--data-dir", "--database", "--storage", "--config"} <= opts, (path, opts)
        checked.append(path)
    assert ("user", "add") in checked and ("gc",) in checked and ("serve",) in checked
