"""Servers of their own: the first admin account (generated password printed once), the
--no-auth warning, token expiry, and no secret in the server log."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

from support.http import Bearer, call, describe
from support.oci import assert_error, v2
from support.servers import log_text, start_registry

from .authkit import (
    Api,
    assert_unauthorized,
    cli_env,
    get_manifest,
    get_token,
    jwt_claims,
    new_password,
    new_source,
    post_token,
    push_image,
    push_scope,
    run_processes,
    start_upload,
    uniq,
)

FIRST_ADMIN = re.compile(r"created the first admin account: user 'admin', password '([^']+)'")


def test_generated_admin_password_is_printed_once(reg_factory):
    reg = reg_factory("--workers", "1")  # MOORAGE_ADMIN_PASSWORD empty: generated
    log = log_text(reg)
    found = FIRST_ADMIN.findall(log)
    assert len(found) == 1, log[-3000:]
    password = found[0]
    assert len(password) >= 16, "a generated password should be long"
    assert get_token(reg, auth=("admin", password)).status_code == 200
    assert Api(reg, ("admin", password)).ok("GET", "users")["users"][0]["admin"] is True

    # a second start on the same data dir: nothing printed, the password unchanged, and
    # MOORAGE_ADMIN_PASSWORD no longer matters (it is for the first start only)
    reg.stop()
    size = len(log_text(reg))
    reg.env["MOORAGE_ADMIN_PASSWORD"] = "a-different-password"
    reg.start()
    later = log_text(reg)[size:]
    assert "created the first admin account" not in later, later[-3000:]
    assert password not in later
    assert get_token(reg, auth=("admin", password)).status_code == 200
    r = get_token(reg, auth=("admin", "a-different-password"), source=new_source())
    assert_error(r, 401, "UNAUTHORIZED")
    # the whole log has the password exactly once
    assert log_text(reg).count(password) == 1


def test_known_admin_password_from_environment(reg_factory):
    password = new_password()
    reg = reg_factory("--workers", "1", admin_password=password)
    assert "created the first admin account" not in log_text(reg)
    assert "authentication is OFF" not in log_text(reg)
    assert get_token(reg, auth=("admin", password)).status_code == 200
    users = Api(reg, ("admin", password)).ok("GET", "users")["users"]
    assert [(u["name"], u["admin"]) for u in users] == [("admin", True)], users


def test_no_auth_prints_a_loud_warning(tmp_path: Path):
    reg = start_registry(tmp_path, "--workers", "1")  # tests/conftest.py: --no-auth
    try:
        log = log_text(reg)
        warnings = [line for line in log.splitlines() if "WARNING" in line]
        assert warnings, log
        assert any("--no-auth" in w or "authentication is OFF" in w for w in warnings), warnings
        assert "created the first admin account" not in log
        assert call("GET", v2(reg, "")).status_code == 200
    finally:
        reg.stop()


def test_expired_token_is_refused(reg_factory):
    password = new_password()
    reg = reg_factory("--workers", "2", admin_password=password, MOORAGE_TOKEN_TTL="2")
    admin = ("admin", password)
    repo = f"{uniq('ttl')}/app"
    push_image(reg, repo, "v1", admin)
    r = get_token(reg, push_scope(repo), auth=admin, offline_token="true")
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert body["expires_in"] == 2, body
    claims = jwt_claims(body["token"])
    assert claims["exp"] - claims["iat"] == 2, claims
    tok = Bearer(body["token"])
    for _ in range(4):  # both workers accept it (and cache it) while it is valid
        assert get_manifest(reg, repo, "v1", tok).status_code == 200
    time.sleep(3.2)
    for _ in range(4):
        r = get_manifest(reg, repo, "v1", tok)
        params = assert_unauthorized(r)
        assert params.get("error") == "invalid_token", describe(r)
        assert_unauthorized(call("GET", v2(reg, ""), auth=tok))
        assert_error(call("GET", f"{reg.url}/api/v1/users", auth=tok), 401)
    # the refresh token (long-lived) still gives a new, working access token
    p = post_token(
        reg,
        grant_type="refresh_token",
        refresh_token=body["refresh_token"],
        service="moorage",
        scope=push_scope(repo),
    )
    assert p.status_code == 200, describe(p)
    assert start_upload(reg, repo, Bearer(p.json()["access_token"])).status_code == 202


def test_secrets_never_reach_the_log(reg_factory):
    admin_pw = new_password()
    reg = reg_factory(
        "--workers",
        "2",
        admin_password=admin_pw,
        MOORAGE_LOG_LEVEL="DEBUG",
        MOORAGE_ACCESS_LOG="true",
    )
    api = Api(reg, ("admin", admin_pw))
    user, pw1 = api.create_user()
    repo = f"{user}/app"
    push_image(reg, repo, "v1", (user, pw1))  # creates the user's namespace
    robot, secret1, _ = api.create_robot({user: ["pull", "push"]})
    # CLI-made accounts on the same data dir
    cli_user, pw_cli = uniq("cli"), new_password()
    cli_robot = uniq("clirobot")
    out = run_processes(
        [
            ["user", "add", cli_user, "--password", pw_cli, "--data-dir", str(reg.data_dir)],
            ["robot", "add", cli_robot, "-n", f"{user}=pull", "--data-dir", str(reg.data_dir)],
        ],
        env=cli_env(reg),
    )
    secret_cli = re.search(r"secret \(shown once\): (\S+)", out[1].stdout).group(1)

    src = new_source()
    wrong = "wrong-" + new_password()
    tokens = []
    # logins of every kind, successful and not
    r = get_token(reg, push_scope(repo), auth=(user, pw1), offline_token="true")
    tokens += [r.json()["token"], r.json()["refresh_token"]]
    r = post_token(
        reg,
        grant_type="password",
        username=user,
        password=pw1,
        service="moorage",
        scope=push_scope(repo),
        access_type="offline",
        client_id="ci",
    )
    tokens += [r.json()["token"], r.json()["refresh_token"]]
    assert get_manifest(reg, repo, "v1", Bearer(tokens[0])).status_code == 200
    assert get_token(reg, auth=(user, wrong), source=src).status_code == 401
    assert call("GET", v2(reg, ""), auth=(user, wrong), source=src).status_code == 401
    assert (
        post_token(
            reg, source=src, grant_type="password", username=user, password=wrong, service="moorage"
        ).status_code
        == 401
    )
    assert get_token(reg, auth=(robot, secret1)).status_code == 200
    assert get_manifest(reg, repo, "v1", (robot, secret1)).status_code == 200
    assert get_token(reg, auth=(robot, secret1 + "x"), source=src).status_code == 401
    assert get_token(reg, auth=(cli_user, pw_cli)).status_code == 200
    assert get_token(reg, auth=(f"robot${cli_robot}", secret_cli)).status_code == 200
    assert call("GET", v2(reg, ""), auth=(f"robot${cli_robot}", secret_cli)).status_code == 200
    # a password change and a new robot through the API
    pw2 = new_password()
    api.ok("PATCH", f"users/{user}", json={"password": pw2})
    assert call("GET", v2(reg, ""), auth=(user, pw2)).status_code == 200
    robot2, secret2, _ = api.create_robot({user: ["pull"]})
    assert api("DELETE", f"robots/{robot2}").status_code == 204
    # a user-supplied password that fails validation (too long)
    too_long = new_password() * 40
    assert api("POST", "users", json={"name": uniq("x"), "password": too_long}).status_code == 400
    audit_text = api("GET", "audit", params={"limit": 1000, "format": "jsonl"}).text
    reg.stop()  # flush everything

    secrets = {
        "admin password": admin_pw,
        "password": pw1,
        "changed password": pw2,
        "CLI password": pw_cli,
        "wrong password": wrong,
        "robot secret": secret1,
        "second robot secret": secret2,
        "CLI robot secret": secret_cli,
        "rejected password": too_long,
    }
    for label, value in list(secrets.items()):
        secrets[f"basic header with {label}"] = base64.b64encode(
            f"{user}:{value}".encode()
        ).decode()
    secrets["robot basic header"] = base64.b64encode(f"{robot}:{secret1}".encode()).decode()
    for i, t in enumerate(tokens):
        secrets[f"token {i}"] = t
        secrets[f"signature of token {i}"] = t.split(".")[2]
    log = log_text(reg)
    assert len(log) > 500, "the server logged (almost) nothing: the check would be vacuous"
    leaked = [label for label, value in secrets.items() if value in log]
    assert not leaked, f"secrets in the server log: {leaked}"
    in_audit = [label for label, value in secrets.items() if value in audit_text]
    assert not in_audit, f"secrets in the audit log: {in_audit}"
    # nor stored in clear anywhere in the data dir (database, WAL, ...)
    stored = []
    for path in reg.data_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 64 * 1024 * 1024:
            data = path.read_bytes()
            stored += [
                f"{label} in {path.name}"
                for label, value in secrets.items()
                if len(value) > 8
                and value.encode() in data
                and not label.startswith(("token", "signature"))
            ]
    assert not stored, stored
