"""The token endpoint (GET and POST /token) and how /v2/ treats the tokens it issues, and forged,
tampered or misused ones."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from support.http import Bearer, RawAuth, call, describe
from support.oci import assert_error, v2

from .authkit import (
    ROLE_ACTIONS,
    access_of,
    all_scope,
    assert_denied,
    assert_unauthorized,
    b64url,
    b64url_decode,
    challenge,
    get_manifest,
    get_token,
    jwt_claims,
    jwt_header,
    new_source,
    post_token,
    pull_scope,
    push_scope,
    start_upload,
    token,
)

# ----------------------------------------------------------------------------------------------
# the response and the JWT


def test_token_response_and_jwt_shape(world):
    reg = world.reg
    user, _ = world.users["reader"]
    repo = f"{world.team}/app"
    before = time.time()
    r = get_token(reg, push_scope(repo), auth=world.users["reader"])
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)
    body = r.json()
    assert {"token", "access_token", "expires_in", "issued_at", "scope"} <= set(body), body
    assert body["token"] == body["access_token"], body
    assert body["expires_in"] == 300, body  # the default MOORAGE_TOKEN_TTL
    issued = datetime.fromisoformat(body["issued_at"])
    assert issued.tzinfo is not None, body
    assert abs(issued.timestamp() - before) < 60, body
    # the reader asked for pull,push and got pull only
    assert body["scope"] == f"repository:{repo}:pull", body

    tok = body["token"]
    header = jwt_header(tok)
    assert header["alg"] == "ES256", header
    assert isinstance(header.get("kid"), str) and header["kid"], header
    assert len(b64url_decode(tok.split(".")[2])) == 64, "an ES256 signature is 64 bytes (r||s)"
    claims = jwt_claims(tok)
    assert claims["iss"] == "moorage", claims
    assert claims["aud"] in ("moorage", ["moorage"]), claims
    assert claims["sub"] == user, claims
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int), claims
    assert claims["exp"] - claims["iat"] == body["expires_in"], claims
    assert claims["exp"] > time.time(), claims
    assert claims["access"] == [{"type": "repository", "name": repo, "actions": ["pull"]}], claims


def test_kid_is_stable_across_tokens_and_workers(world):
    kids = {jwt_header(token(world.reg, world.users["reader"]))["kid"] for _ in range(6)}
    assert len(kids) == 1, kids


@pytest.mark.parametrize("role", ["admin", "maintainer", "developer", "reader", "outsider"])
def test_granted_access_is_what_was_asked_and_allowed(world, role):
    creds = world.outsider if role == "outsider" else world.users[role]
    repo = f"{world.team}/app"
    allowed = set() if role == "outsider" else ROLE_ACTIONS[role]
    for asked in ({"pull"}, {"push"}, {"pull", "push"}, {"delete"}, {"pull", "push", "delete"}):
        scope = f"repository:{repo}:{','.join(sorted(asked))}"
        r = get_token(world.reg, scope, auth=creds)
        assert r.status_code == 200, describe(r)
        granted = access_of(r.json()["token"]).get(("repository", repo), set())
        assert granted == asked & allowed, (role, asked, granted)
        if granted:
            assert r.json()["scope"] == f"repository:{repo}:{','.join(sorted(granted))}"
        else:
            assert r.json()["scope"] == "", r.json()


def test_server_admin_gets_everything_asked(world):
    repo = f"ns{uuid.uuid4().hex[:8]}/anything"  # not even existing yet
    tok = token(world.reg, world.admin, all_scope(repo), "registry:catalog:*")
    assert access_of(tok) == {
        ("repository", repo): {"pull", "push", "delete"},
        ("registry", "catalog"): {"*"},
    }


def test_wildcard_actions_are_clipped_to_the_role(world):
    repo = f"{world.team}/app"
    for role in ("maintainer", "developer", "reader"):
        tok = token(world.reg, world.users[role], f"repository:{repo}:*")
        assert access_of(tok) == {("repository", repo): ROLE_ACTIONS[role]}, role


def test_several_scopes_in_one_request(world):
    reg = world.reg
    team, pub = f"{world.team}/app", f"{world.pub}/app"
    other = f"nope{uuid.uuid4().hex[:8]}/x"
    dev = world.users["developer"]
    # several scope parameters
    tok = token(reg, dev, pull_scope(team), push_scope(pub), pull_scope(other))
    assert access_of(tok) == {("repository", team): {"pull"}, ("repository", pub): {"pull"}}
    # several scopes in one parameter, space separated
    tok = token(reg, dev, f"{push_scope(team)} {pull_scope(pub)}")
    assert access_of(tok) == {
        ("repository", team): {"pull", "push"},
        ("repository", pub): {"pull"},
    }


@pytest.mark.parametrize(
    "scope",
    [
        "",
        "repository",
        "repository:x",
        "repository::pull",
        "foo:bar:pull",
        "registry:catalog:pull",
        "repository:{team}/app:",
        "repository:{team}/app:fly",
    ],
)
def test_malformed_or_unknown_scopes_grant_nothing(world, scope):
    r = get_token(world.reg, scope.format(team=world.team), auth=world.users["maintainer"])
    assert r.status_code in (200, 400), describe(r)
    if r.status_code == 200:
        assert jwt_claims(r.json()["token"])["access"] == [], r.json()


def test_catalog_scope_only_for_accounts(world):
    tok = token(world.reg, world.users["reader"], "registry:catalog:*")
    assert access_of(tok) == {("registry", "catalog"): {"*"}}
    anon = token(world.reg, None, "registry:catalog:*")
    assert access_of(anon) == {}


def test_anonymous_token_gets_public_pull_only(world):
    reg = world.reg
    team, pub = f"{world.team}/app", f"{world.pub}/app"
    r = get_token(reg, all_scope(pub), all_scope(team), offline_token="true")
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert access_of(body["token"]) == {("repository", pub): {"pull"}}, body
    assert "refresh_token" not in body, body
    assert body["scope"] == f"repository:{pub}:pull", body
    # and it works for pulling the public image
    g = get_manifest(reg, pub, "v1", Bearer(body["token"]))
    assert g.status_code == 200, describe(g)
    assert g.content == world.pub_image.body


# ----------------------------------------------------------------------------------------------
# refresh tokens and the OAuth2 POST form


def test_offline_token_gives_refresh_token_that_renews_access(world):
    reg = world.reg
    dev_name, _ = world.users["developer"]
    repo = f"{world.team}/app"
    r = get_token(
        reg,
        pull_scope(repo),
        auth=world.users["developer"],
        offline_token="true",
        client_id="moorage-tests",
    )
    assert r.status_code == 200, describe(r)
    refresh = r.json().get("refresh_token")
    assert refresh, r.json()
    assert jwt_claims(refresh)["sub"] == dev_name

    p = post_token(
        reg,
        grant_type="refresh_token",
        refresh_token=refresh,
        service="moorage",
        scope=push_scope(repo),
        client_id="moorage-tests",
    )
    assert p.status_code == 200, describe(p)
    body = p.json()
    assert body["refresh_token"] == refresh, body
    assert access_of(body["access_token"]) == {("repository", repo): {"pull", "push"}}, body
    assert jwt_claims(body["access_token"])["sub"] == dev_name
    u = start_upload(reg, repo, Bearer(body["access_token"]))
    assert u.status_code == 202, describe(u)
    # the refresh token does not widen access beyond the role either
    p = post_token(
        reg,
        grant_type="refresh_token",
        refresh_token=refresh,
        service="moorage",
        scope=all_scope(repo),
        client_id="moorage-tests",
    )
    assert access_of(p.json()["access_token"]) == {("repository", repo): {"pull", "push"}}


def test_password_grant(world):
    reg = world.reg
    name, pw = world.users["maintainer"]
    repo = f"{world.team}/app"
    r = post_token(
        reg,
        grant_type="password",
        username=name,
        password=pw,
        service="moorage",
        scope=all_scope(repo),
        client_id="moorage-tests",
        access_type="offline",
    )
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert body["token"] == body["access_token"], body
    assert access_of(body["access_token"]) == {("repository", repo): {"pull", "push", "delete"}}
    assert body.get("refresh_token"), body
    assert jwt_claims(body["refresh_token"])["sub"] == name
    # online: no refresh token
    r = post_token(
        reg,
        grant_type="password",
        username=name,
        password=pw,
        service="moorage",
        scope=pull_scope(repo),
        client_id="moorage-tests",
    )
    assert r.status_code == 200, describe(r)
    assert "refresh_token" not in r.json(), r.json()


def test_password_grant_wrong_password(world):
    name, pw = world.new_user()
    r = post_token(
        world.reg,
        source=new_source(),
        grant_type="password",
        username=name,
        password=pw + "x",
        service="moorage",
        client_id="moorage-tests",
    )
    assert_error(r, 401, "UNAUTHORIZED")
    assert "token" not in r.text


@pytest.mark.parametrize(
    "form",
    [{}, {"grant_type": "client_credentials"}, {"grant_type": "authorization_code", "code": "x"}],
)
def test_unknown_grant_types_are_refused(world, form):
    r = post_token(world.reg, **form)
    assert r.status_code in (400, 401), describe(r)
    assert "access_token" not in r.text


def test_refresh_token_is_not_an_access_token(world):
    reg = world.reg
    r = get_token(
        reg, pull_scope(f"{world.team}/app"), auth=world.users["reader"], offline_token="true"
    )
    refresh = r.json()["refresh_token"]
    g = get_manifest(reg, f"{world.team}/app", "v1", Bearer(refresh))
    assert_unauthorized(g)
    g = call("GET", v2(reg, ""), auth=Bearer(refresh))
    assert_unauthorized(g)
    # and an access token is not a refresh token
    p = post_token(
        reg, grant_type="refresh_token", refresh_token=r.json()["token"], service="moorage"
    )
    assert_error(p, 401, "UNAUTHORIZED")
    p = post_token(reg, grant_type="refresh_token", refresh_token="garbage", service="moorage")
    assert_error(p, 401, "UNAUTHORIZED")


def test_token_endpoint_takes_only_basic_credentials(world):
    tok = token(world.reg, world.users["reader"])
    r = get_token(world.reg, pull_scope(f"{world.team}/app"), auth=Bearer(tok))
    assert_error(r, 401, "UNAUTHORIZED")


# ----------------------------------------------------------------------------------------------
# using tokens: enough, insufficient, not allowed


def test_token_with_access_works(world):
    reg = world.reg
    repo = f"{world.team}/app"
    tok = Bearer(token(reg, world.users["reader"], pull_scope(repo)))
    assert call("GET", v2(reg, ""), auth=tok).status_code == 200
    g = get_manifest(reg, repo, "v1", tok)
    assert g.status_code == 200, describe(g)
    assert g.content == world.team_image.body
    t = call("GET", v2(reg, f"{repo}/tags/list"), auth=tok)
    assert t.status_code == 200 and t.json()["tags"] == ["v1"], describe(t)


def test_insufficient_scope_when_a_new_token_could_grant_it(world):
    reg = world.reg
    repo = f"{world.team}/app"
    dev = world.users["developer"]
    tok = Bearer(token(reg, dev, pull_scope(repo)))
    r = start_upload(reg, repo, tok)
    params = assert_unauthorized(r)
    assert params.get("error") == "insufficient_scope", describe(r)
    assert params.get("scope") == f"repository:{repo}:pull,push", describe(r)
    assert params.get("realm") == f"{reg.url}/token", describe(r)
    # a token for another repository of the same namespace does not carry over either
    r = get_manifest(reg, f"{world.team}/other", "v1", tok)
    params = assert_unauthorized(r)
    assert params.get("error") == "insufficient_scope", describe(r)
    # following the challenge gives a token that works
    tok2 = Bearer(token(reg, dev, params["scope"]))
    r = start_upload(reg, repo, Bearer(token(reg, dev, push_scope(repo))))
    assert r.status_code == 202, describe(r)
    assert get_manifest(reg, f"{world.team}/other", "v1", tok2).status_code == 404


def test_insufficient_scope_for_delete(world):
    reg = world.reg
    repo = f"{world.team}/app"
    tok = Bearer(token(reg, world.users["maintainer"], push_scope(repo)))
    r = call("DELETE", v2(reg, f"{repo}/manifests/nonexistent-tag"), auth=tok)
    params = assert_unauthorized(r)
    assert params.get("error") == "insufficient_scope", describe(r)
    assert params.get("scope") == f"repository:{repo}:delete", describe(r)


@pytest.mark.parametrize(
    "who,action",
    [("reader", "push"), ("developer", "delete"), ("outsider", "pull"), ("outsider", "push")],
)
def test_denied_when_the_caller_may_not_at_all(world, who, action):
    reg = world.reg
    repo = f"{world.team}/app"
    creds = world.outsider if who == "outsider" else world.users[who]
    tok = Bearer(token(reg, creds, all_scope(repo)))
    if action == "pull":
        r = get_manifest(reg, repo, "v1", tok)
    elif action == "push":
        r = start_upload(reg, repo, tok)
    else:
        r = call("DELETE", v2(reg, f"{repo}/manifests/v1"), auth=tok)
    assert_denied(r)
    assert "v1" in call("GET", v2(reg, f"{repo}/tags/list"), auth=world.admin).json()["tags"]


def test_anonymous_token_on_private_repository_is_401(world):
    reg = world.reg
    repo = f"{world.team}/app"
    tok = Bearer(token(reg, None, pull_scope(repo)))
    r = get_manifest(reg, repo, "v1", tok)
    params = assert_unauthorized(r)
    assert params.get("scope") == f"repository:{repo}:pull", describe(r)
    assert world.team_image.body not in r.content


def test_anonymous_token_cannot_push_to_public(world):
    reg = world.reg
    repo = f"{world.pub}/app"
    tok = Bearer(token(reg, None, push_scope(repo)))
    r = start_upload(reg, repo, tok)
    assert_unauthorized(r)


# ----------------------------------------------------------------------------------------------
# forged and tampered tokens


def _now_claims(sub: str, access: list[dict], **extra) -> dict:
    now = int(time.time())
    return {
        "iss": "moorage",
        "sub": sub,
        "aud": "moorage",
        "iat": now,
        "nbf": now - 1,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "kind": "user",
        "typ": "access",
        "access": access,
        **extra,
    }


def _foreign_key():
    return ec.generate_private_key(ec.SECP256R1())


def _forgeries(world) -> dict[str, str]:
    reg = world.reg
    repo = f"{world.team}/app"
    genuine = token(reg, world.outsider, all_scope(repo))  # access: nothing
    kid = jwt_header(genuine)["kid"]
    head, payload, sig = genuine.split(".")
    wanted = [{"type": "repository", "name": repo, "actions": ["pull", "push", "delete"]}]
    as_admin = _now_claims("admin", wanted)
    key = _foreign_key()

    def tampered(**changes) -> str:
        claims = {**json.loads(b64url_decode(payload)), **changes}
        return f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"

    none_header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return {
        "foreign-key-same-kid": jwt.encode(as_admin, key, algorithm="ES256", headers={"kid": kid}),
        "foreign-key-own-kid": jwt.encode(
            as_admin, key, algorithm="ES256", headers={"kid": "attacker"}
        ),
        "foreign-key-no-kid": jwt.encode(as_admin, key, algorithm="ES256"),
        "alg-none": f"{none_header}.{b64url(json.dumps(as_admin).encode())}.",
        "alg-none-with-sig": f"{none_header}.{b64url(json.dumps(as_admin).encode())}.{sig}",
        "hs256": jwt.encode(
            as_admin, "secret-key-of-the-attacker-32byt", algorithm="HS256", headers={"kid": kid}
        ),
        "tampered-access": tampered(access=wanted),
        "tampered-sub": tampered(sub="admin", access=wanted),
        "tampered-exp": tampered(exp=int(time.time()) + 10 * 365 * 86400, access=wanted),
        "tampered-kind": tampered(kind="robot", access=wanted),
        "truncated-signature": f"{head}.{payload}.{sig[:-6]}",
        "no-signature": f"{head}.{payload}.",
        "swapped-signature": f"{head}.{payload}.{b64url(bytes(64))}",
        "garbage": "not-a-jwt",
        "empty": "",
    }


def test_forged_and_tampered_tokens_are_rejected(world):
    reg = world.reg
    repo = f"{world.team}/app"
    failures = []
    for name, forged in _forgeries(world).items():
        auth = RawAuth(f"Bearer {forged}")
        for method, url in (
            ("GET", v2(reg, f"{repo}/manifests/v1")),
            ("POST", v2(reg, f"{repo}/blobs/uploads/")),
            ("GET", v2(reg, "")),
            ("GET", v2(reg, "_catalog")),
            ("GET", f"{reg.url}/api/v1/users"),
        ):
            r = call(method, url, auth=auth, headers={"Content-Length": "0"})
            if r.status_code != 401 or world.team_image.body in r.content:
                failures.append(f"{name}: {describe(r)}")
            elif "/v2/" in url:
                params = challenge(r)
                if params.get("error") != "invalid_token":
                    failures.append(f"{name}: challenge without error=invalid_token: {describe(r)}")
    assert not failures, "\n".join(failures)


def test_genuine_token_still_works_control(world):
    """The forgeries above are refused for being forged: the same request with a genuine token
    of an allowed user succeeds."""
    repo = f"{world.team}/app"
    tok = Bearer(token(world.reg, world.users["maintainer"], all_scope(repo)))
    assert get_manifest(world.reg, repo, "v1", tok).status_code == 200
