"""OIDC workload identity: a tiny OIDC issuer made here (RSA and EC keys from cryptography, a
JWKS served over HTTP by a thread on 127.0.0.1, and one kept in a file) signs ID tokens that
`/token` exchanges for registry tokens, as `docker login -u oidc` and RFC 8693 clients do.

One server (one worker: one JWKS cache per node for the counts below) with two issuers:
- `web`: JWKS by URL; rule repository=org/* and ref=refs/heads/main -> NS=pull,push;
- `file`: JWKS from a file (ES256); rule sub=system:serviceaccount:ml:* -> NS=pull.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support.http import Bearer, call, describe
from support.oci import assert_error
from support.servers import BACKEND, LB_NODES

from moorage.auth.oidc import claim_matches, rule_grants

from .authkit import (
    Api,
    access_of,
    await_event,
    b64url,
    cli_env,
    get_manifest,
    get_token,
    jwt_claims,
    new_password,
    push_image,
    run_cli,
    start_auth_registry,
    try_push,
    uniq,
)

AUDIENCE = "moorage-ci"
NODES = LB_NODES if BACKEND == "pg-s3-lb" else 1  # each node keeps its own JWKS cache
REFRESH = 4.0  # the server's oidc_jwks_refresh_interval here (seconds)
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

# ----------------------------------------------------------------------------------------------
# a tiny OIDC issuer


@dataclass
class Issuer:
    """Signing keys by kid, and the ID tokens they sign."""

    iss: str
    keys: dict[str, Any] = field(default_factory=dict)
    served: dict[str, Any] = field(default_factory=dict)  # kid -> public key in the JWKS

    def add_key(self, kid: str, kind: str = "rsa", publish: bool = True) -> Any:
        key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
               else ec.generate_private_key(ec.SECP256R1()))
        self.keys[kid] = key
        if publish:
            self.served[kid] = key.public_key()
        return key

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, public in self.served.items():
            algo = jwt.algorithms.RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) \
                else jwt.algorithms.ECAlgorithm
            entry = algo.to_jwk(public, as_dict=True)
            out.append({**entry, "kid": kid, "use": "sig"})
        return {"keys": out}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.iss, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + 300,
                  "jti": uuid.uuid4().hex}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, kid: str, signer: str | None = None, headers: dict | None = None,
              **claims: Any) -> str:
        """An ID token with `claims`, signed by key `signer` (default: `kid`'s) under `kid`."""
        key = self.keys[signer or kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(self.claims(**claims), key, algorithm=alg,
                          headers={"kid": kid, **(headers or {})})


def github(ref: str = "refs/heads/main", repository: str = "org/app") -> dict[str, Any]:
    """Claims as GitHub Actions puts them in its ID tokens."""
    return {"sub": f"repo:{repository}:ref:{ref}", "repository": repository, "ref": ref,
            "repository_owner": repository.split("/")[0], "ref_protected": True}


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


class JwksServer:
    """Serves an issuer's current JWKS at /jwks from a thread; counts the fetches."""

    def __init__(self, issuer: Issuer) -> None:
        outer = self
        self.issuer = issuer
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps(outer.issuer.jwks()).encode()
                self.send_response(200 if self.path == "/jwks" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------------------------
# the server with its two issuers


@dataclass
class Setup:
    reg: Any
    admin: tuple[str, str]
    web: Issuer
    file: Issuer
    jwks: JwksServer
    ns: str  # the web issuer's rule grants pull,push here
    ml: str  # the file issuer's rule grants pull here

    @property
    def api(self) -> Api:
        return Api(self.reg, self.admin)

    def cli(self, *args: str, check: bool = True):
        """`moorage ARGS` on this server's data dir, or its database and storage (scale-out)."""
        extra = [*getattr(self.reg, "backend_args", []), *self.reg.extra_args]
        where = ["--data-dir", str(self.reg.data_dir)]
        for flag in ("--database", "--storage"):
            if flag in extra:
                where += [flag, extra[extra.index(flag) + 1]]
        return run_cli(*args, *where, env=cli_env(self.reg), check=check)

    def principal(self, issuer: Issuer, sub: str) -> str:
        return f"oidc:{issuer.iss.split('//', 1)[1].split('/', 1)[0]}:{sub}"


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("oidc")
    password = new_password()
    reg = start_auth_registry(tmp / "srv", "--workers", "1", admin_password=password,
                              MOORAGE_OIDC_JWKS_REFRESH_INTERVAL=str(REFRESH))
    web = Issuer("")
    jwks = JwksServer(web)
    web.iss = jwks.url  # the issuer is where its keys are served, as for a real one
    web.add_key("rsa-1")
    web.add_key("ec-1", "ec")
    file = Issuer("https://kubernetes.example.test")
    file.add_key("k8s-1", "ec")
    jwks_file = tmp / "k8s-jwks.json"
    jwks_file.write_text(json.dumps(file.jwks()))
    setup = Setup(reg, ("admin", password), web, file, jwks, "", "")
    try:
        setup.ns = setup.api.create_namespace(uniq("ci"))
        setup.ml = setup.api.create_namespace(uniq("ml"))
        setup.cli("oidc", "add", web.iss, "--audience", AUDIENCE, "--jwks-url", f"{jwks.url}/jwks",
                  "--claim", "repository=org/*", "--claim", "ref=refs/heads/main",
                  "-n", f"{setup.ns}=pull,push")
        setup.cli("oidc", "add", file.iss, "--audience", AUDIENCE, "--jwks-file", str(jwks_file),
                  "--claim", "sub=system:serviceaccount:ml:*", "-n", f"{setup.ml}=pull")
        yield setup
    finally:
        reg.stop()
        jwks.close()


def basic(token: str) -> tuple[str, str]:
    return ("oidc", token)


def exchange(setup: Setup, token: str, *scopes: str, **params: str):
    return get_token(setup.reg, *scopes, auth=basic(token), **params)


def message(resp) -> str:
    return resp.json()["errors"][0]["message"]


# ----------------------------------------------------------------------------------------------
# exchange and use


def test_basic_exchange_grants_push_and_pull_within_the_rule(oidc: Setup):
    ns, token = oidc.ns, oidc.web.token("rsa-1", **github())
    repo = f"{ns}/app"
    r = exchange(oidc, token, f"repository:{repo}:pull,push", "registry:catalog:*",
                 offline_token="true")
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert access_of(body["token"])[("repository", repo)] == {"pull", "push"}
    claims = jwt_claims(body["token"])
    assert claims["sub"] == oidc.principal(oidc.web, "repo:org/app:ref:refs/heads/main")
    assert claims["kind"] == "oidc"
    assert "refresh_token" not in body  # a workload exchanges a fresh ID token instead

    bearer = Bearer(body["token"])
    image = push_image(oidc.reg, repo, "v1", bearer)
    r = get_manifest(oidc.reg, repo, "v1", bearer)
    assert r.status_code == 200 and r.content == image.body, describe(r)
    # The ID token also works as Basic credentials straight on /v2/.
    r = get_manifest(oidc.reg, repo, "v1", basic(token))
    assert r.status_code == 200 and r.content == image.body, describe(r)


def test_password_and_token_exchange_grants(oidc: Setup):
    repo = f"{oidc.ns}/grants"
    token = oidc.web.token("ec-1", **github(repository="org/other"))
    r = call("POST", f"{oidc.reg.url}/token", data={
        "grant_type": "password", "username": "oidc", "password": token, "service": "moorage",
        "scope": f"repository:{repo}:pull", "access_type": "offline"})
    assert r.status_code == 200, describe(r)
    assert access_of(r.json()["access_token"]) == {("repository", repo): {"pull"}}
    assert "refresh_token" not in r.json()

    r = call("POST", f"{oidc.reg.url}/token", data={
        "grant_type": EXCHANGE, "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "scope": f"repository:{repo}:pull,push"})
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer"
    assert access_of(body["access_token"]) == {("repository", repo): {"pull", "push"}}
    assert try_push(oidc.reg, repo, Bearer(body["access_token"])).status_code == 201

    r = call("POST", f"{oidc.reg.url}/token", data={
        "grant_type": EXCHANGE, "subject_token": token, "subject_token_type": "saml2"})
    assert_error(r, 400, "UNSUPPORTED")


def test_file_jwks_issuer_grants_only_its_rule(oidc: Setup):
    token = oidc.file.token("k8s-1", sub="system:serviceaccount:ml:trainer")
    repo = f"{oidc.ml}/model"
    r = exchange(oidc, token, f"repository:{repo}:pull,push", f"repository:{oidc.ns}/app:pull")
    assert r.status_code == 200, describe(r)
    assert access_of(r.json()["token"]) == {("repository", repo): {"pull"}}
    # Straight on /v2/ the refusal says what the rules granted.
    r = try_push(oidc.reg, repo, basic(token))
    assert_error(r, 403, "DENIED")
    assert "OIDC rules" in message(r) and "only pull" in message(r), describe(r)


def test_scope_outside_the_grant_is_left_out_of_the_token(oidc: Setup):
    token = oidc.web.token("rsa-1", **github())
    r = exchange(oidc, token, f"repository:{oidc.ml}/model:pull,push")
    assert r.status_code == 200, describe(r)
    assert r.json()["scope"] == "" and access_of(r.json()["token"]) == {}
    r = call("GET", f"{oidc.reg.url}/v2/{oidc.ml}/model/tags/list",
             auth=Bearer(r.json()["token"]))
    assert_error(r, 401, "UNAUTHORIZED")
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]


def test_skopeo_pushes_with_the_id_token(oidc: Setup, tmp_path: Path):
    from clients.ocikit import OciLayout, make_image, read_layout, require_binary, run

    require_binary("skopeo")
    creds = f"oidc:{oidc.web.token('rsa-1', **github())}"
    src = OciLayout(tmp_path / "src")
    image = src.add_image("v1", make_image())
    dest = f"docker://{oidc.reg.host}/{oidc.ns}/skopeo:v1"
    run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", "--dest-creds", creds,
         src.ref("v1"), dest])
    out = tmp_path / "out"
    run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds", creds,
         dest, f"oci:{out}:v1"])
    assert read_layout(out)["v1"]["digest"] == image.digest


# ----------------------------------------------------------------------------------------------
# refusals


def _hs256_with_public_key(issuer: Issuer) -> str:
    public = issuer.keys["rsa-1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = b64url(json.dumps(issuer.claims(**github())).encode())
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def _refused_cases(web: Issuer) -> dict[str, tuple[str, str]]:
    """case -> (token, a fragment of the refusal's message)."""
    now = int(time.time())
    stranger = Issuer("https://elsewhere.example.test")
    stranger.add_key("rsa-1")
    web.add_key("forger", publish=False)
    return {
        "wrong audience": (web.token("rsa-1", aud="someone-else", **github()), "audience"),
        "expired": (web.token("rsa-1", iat=now - 900, nbf=now - 900, exp=now - 600, **github()),
                    "expired"),
        "not yet valid": (web.token("rsa-1", nbf=now + 600, **github()), "not yet valid"),
        "issued too long ago": (web.token("rsa-1", iat=now - 7200, nbf=now - 7200,
                                          exp=now + 300, **github()), "issued"),
        "unknown issuer": (stranger.token("rsa-1", **github()), "unknown issuer"),
        "bad signature": (web.token("rsa-1", signer="forger", **github()), "bad signature"),
        "alg none": (unsigned({"alg": "none", "typ": "JWT"}, web.claims(**github())),
                     "algorithm"),
        "HS256 with the public key": (_hs256_with_public_key(web), "algorithm"),
        "unknown kid": (web.token("forger", **github()), "key id 'forger'"),
        "claims match no rule": (web.token("rsa-1", **github(ref="refs/heads/dev")),
                                 "match no rule"),
        "not a JWT": ("definitely-not-a-jwt", "not a JWT"),
        "alg a list": (unsigned({"alg": ["RS256"], "kid": "rsa-1"}, web.claims(**github())),
                       "algorithm"),
    }


def test_refused_tokens_get_401_with_the_reason(oidc: Setup):
    cases = _refused_cases(oidc.web)
    problems = []
    for case, (token, fragment) in cases.items():
        r = exchange(oidc, token, f"repository:{oidc.ns}/app:pull")
        if r.status_code != 401 or r.json()["errors"][0]["code"] != "UNAUTHORIZED" \
                or fragment not in message(r):
            problems.append(f"{case}: {describe(r)}")
    assert not problems, "\n".join(problems)
    # On /v2/ too: a refused ID token is not a login.
    r = get_manifest(oidc.reg, f"{oidc.ns}/app", "v1", basic(cases["expired"][0]))
    assert_error(r, 401, "UNAUTHORIZED")
    # The reason is logged and audited; the token never is.
    text = "".join(p.read_text(errors="replace") for p in oidc.reg.log_paths)
    assert "OIDC token refused" in text and "match no rule" in text
    event = await_event(oidc.api, {"action": "login", "outcome": "denied"},
                        actor="oidc", reference=None)
    assert event["detail"]["method"] == "oidc", event
    events = json.dumps(oidc.api.audit(limit=1000))
    assert not any(token in text or token in events for token, _ in cases.values())


def test_a_user_account_cannot_be_named_oidc(oidc: Setup):
    r = oidc.api("POST", "users", json={"name": "oidc", "password": new_password()})
    assert_error(r, 400, "NAME_INVALID")


# ----------------------------------------------------------------------------------------------
# keys over time


def test_unknown_kid_refetches_at_most_once_per_interval_and_rotation_is_picked_up(oidc: Setup):
    time.sleep(REFRESH)  # past the interval of any earlier fetch
    hits = oidc.jwks.hits
    oidc.web.add_key("rsa-2", publish=False)
    early = oidc.web.token("rsa-2", **github())
    for _ in range(3 * NODES):
        r = exchange(oidc, early, f"repository:{oidc.ns}/app:pull")
        assert_error(r, 401, "UNAUTHORIZED")
    # The first unknown kid (per node) fetched the set again; the others waited.
    assert 1 <= oidc.jwks.hits - hits <= NODES
    hits = oidc.jwks.hits

    oidc.web.served["rsa-2"] = oidc.web.keys["rsa-2"].public_key()  # the issuer rotates
    time.sleep(REFRESH + 0.5)
    r = exchange(oidc, oidc.web.token("rsa-2", **github()), f"repository:{oidc.ns}/app:pull")
    assert r.status_code == 200, describe(r)
    assert access_of(r.json()["token"]) == {("repository", f"{oidc.ns}/app"): {"pull"}}
    assert 1 <= oidc.jwks.hits - hits <= NODES


# ----------------------------------------------------------------------------------------------
# audit


def test_audit_log_names_the_oidc_principal(oidc: Setup):
    sub = "repo:org/audited:ref:refs/heads/main"
    token = oidc.web.token("rsa-1", **github(repository="org/audited"))
    repo = f"{oidc.ns}/audited"
    r = exchange(oidc, token, f"repository:{repo}:pull,push")
    assert r.status_code == 200, describe(r)
    push_image(oidc.reg, repo, "v1", Bearer(r.json()["token"]))
    principal = oidc.principal(oidc.web, sub)
    login = await_event(oidc.api, {"action": "login", "actor": principal}, outcome="success")
    assert login["actor_kind"] == "oidc"
    assert login["detail"]["issuer"] == oidc.web.iss and login["detail"]["subject"] == sub
    push = await_event(oidc.api, {"action": "manifest.push", "repository": repo})
    assert (push["actor"], push["actor_kind"]) == (principal, "oidc")


# ----------------------------------------------------------------------------------------------
# administration: CLI and management API


def test_cli_lists_shows_and_removes_rules(oidc: Setup):
    listing = oidc.cli("oidc", "list", "--json")
    issuers = {i["issuer"]: i for i in json.loads(listing.stdout)["issuers"]}
    web = issuers[oidc.web.iss]
    assert web["audience"] == AUDIENCE and web["jwks_url"] == f"{oidc.jwks.url}/jwks"
    assert web["rules"][0]["claims"] == {"repository": "org/*", "ref": "refs/heads/main"}
    assert issuers[oidc.file.iss]["jwks_keys"] == 1
    shown = oidc.cli("oidc", "show", oidc.file.iss)
    assert "sub=system:serviceaccount:ml:*" in shown.stdout, shown.stdout

    # a second rule of the same issuer adds its grant; removing it takes the grant away
    other = oidc.api.create_namespace(uniq("rel"))
    added = json.loads(oidc.cli("oidc", "add", oidc.web.iss, "--claim", "ref=refs/tags/v*",
                                "-n", f"{other}=push,pull", "--json").stdout)
    token = oidc.web.token("rsa-1", **github(ref="refs/tags/v1.2"))
    r = exchange(oidc, token, f"repository:{other}/app:push")
    assert access_of(r.json()["token"]) == {("repository", f"{other}/app"): {"push"}}
    oidc.cli("oidc", "remove", oidc.web.iss, "--rule", str(added["rule"]))
    r = exchange(oidc, token, f"repository:{other}/app:push")
    assert_error(r, 401, "UNAUTHORIZED")

    bad = oidc.cli("oidc", "add", "https://new.example.test", "--claim", "sub=x",
                   "-n", f"{other}=pull", check=False)
    assert bad.returncode == 1 and "--audience" in bad.stderr, bad


def test_management_api_is_for_server_admins(oidc: Setup):
    api = oidc.api
    user = api.create_user()
    assert_error(Api(oidc.reg, user)("GET", "oidc/issuers"), 403, "DENIED")
    issuer = Issuer("https://gitlab.example.test")
    issuer.add_key("gl-1")
    created = api.ok("POST", "oidc/rules", 201, json={
        "issuer": issuer.iss, "audience": AUDIENCE, "jwks": issuer.jwks(),
        "claims": {"project_path": "group/**"}, "permissions": {oidc.ns: ["pull"]}})
    assert created["jwks_keys"] == 1 and created["rules"][0]["id"] == created["rule"]
    token = issuer.token("gl-1", sub="project_path:group/sub/app:ref_type:branch:ref:main",
                         project_path="group/sub/app")
    r = exchange(oidc, token, f"repository:{oidc.ns}/app:pull")
    assert access_of(r.json()["token"]) == {("repository", f"{oidc.ns}/app"): {"pull"}}
    assert api.ok("GET", f"oidc/issuers/{created['id']}")["issuer"] == issuer.iss
    r = api("POST", "oidc/rules", json={"issuer": issuer.iss, "claims": {},
                                        "permissions": {oidc.ns: ["pull"]}})
    assert_error(r, 400, "UNSUPPORTED")
    r = api("POST", "oidc/rules", json={"issuer": issuer.iss, "claims": {"sub": "x"},
                                        "permissions": {"no-such-ns": ["pull"]}})
    assert_error(r, 404, "NAME_UNKNOWN")

    api.ok("DELETE", f"oidc/issuers/{created['id']}", 204)
    r = exchange(oidc, token, f"repository:{oidc.ns}/app:pull")
    assert_error(r, 401, "UNAUTHORIZED")
    assert "unknown issuer" in message(r)
    assert_error(api("DELETE", f"oidc/issuers/{created['id']}"), 404, "NAME_UNKNOWN")


# ----------------------------------------------------------------------------------------------
# rule matching (pure)


def test_claim_globs():
    claims = {"ref": "refs/heads/feature/x", "groups": ["dev", "ops"], "ref_protected": True,
              "run_number": 7}
    assert claim_matches(claims, "ref", "refs/heads/**")
    assert not claim_matches(claims, "ref", "refs/heads/*")  # `*` stays within a segment
    assert claim_matches(claims, "groups", "ops")
    assert claim_matches(claims, "ref_protected", "true")
    assert claim_matches(claims, "run_number", "7")
    assert not claim_matches(claims, "missing", "**")
    rules = [{"id": 1, "claims": {"groups": "dev"}, "permissions": {"a": ["pull"]}},
             {"id": 2, "claims": {"groups": "ops", "ref": "x"}, "permissions": {"a": ["push"]}},
             {"id": 3, "claims": {"ref_protected": "true"}, "permissions": {"a": ["push"],
                                                                           "b": ["pull"]}}]
    assert rule_grants(rules, claims) == ([1, 3], {"a": frozenset({"pull", "push"}),
                                                   "b": frozenset({"pull"})})


# ----------------------------------------------------------------------------------------------
# key sets: what is kept, what a fetch accepts


def test_key_sets_keep_only_asymmetric_signing_keys():
    from moorage.auth.jwks import JwksError, parse_jwks

    issuer = Issuer("https://keys.example.test")
    issuer.add_key("ec", "ec")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    entries = issuer.jwks()["keys"] + [
        {"kty": "oct", "k": b64url(b"shared-secret"), "kid": "hmac"},
        {**jwt.algorithms.RSAAlgorithm.to_jwk(small, as_dict=True), "kid": "rsa-1024"},
        {**issuer.jwks()["keys"][0], "kid": "enc", "use": "enc"},
    ]
    keys = parse_jwks(json.dumps({"keys": entries}))
    assert [k.kid for k in keys.keys] == ["ec"]
    assert keys.candidates("ec", "ES256") and not keys.candidates("ec", "RS256")
    with pytest.raises(JwksError, match="no usable public key"):
        parse_jwks(json.dumps({"keys": entries[1:]}))


def test_jwks_fetch_refuses_redirects_oversize_bodies_and_plain_http_elsewhere():
    from moorage.auth.jwks import MAX_JWKS_BYTES, JwksError, check_jwks_url, fetch_jwks

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/big")
                self.end_headers()
                return
            body = b" " * (MAX_JWKS_BYTES + 1)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with pytest.raises(JwksError, match="more than"):
            fetch_jwks(f"{base}/big", 5.0)
        with pytest.raises(JwksError, match="answered 302"):
            fetch_jwks(f"{base}/redirect", 5.0)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert check_jwks_url("https://token.actions.githubusercontent.com/.well-known/jwks")
    with pytest.raises(JwksError, match="https"):
        check_jwks_url("http://issuer.example.test/jwks")
