"""A tiny OpenID Connect provider for the UI's single sign-on tests, on 127.0.0.1 in a thread:
discovery, an authorize endpoint that signs the configured user in at once and redirects back
with a code, a token endpoint (client secret and PKCE checked) answering an RS256 ID token, and
its JWKS. `Provider.next` shapes the next ID token (claims to add, override or drop)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "moorage-ui"
CLIENT_SECRET = "sso-secret-" + secrets.token_hex(8)


class Provider:
    """The provider's state: its key, issued codes, and the claims of the next sign-in."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict[str, Any]] = {}
        self.next: dict[str, Any] = {}  # claims of the next ID token (None drops one)
        self.token_requests = 0
        self.url = ""

    def id_token(self, request: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": CLIENT_ID, "sub": secrets.token_hex(6), "iat": now,
                  "exp": now + 300, "nonce": request.get("nonce")}
        claims.update(self.next)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})

    def jwks(self) -> dict[str, Any]:
        entry = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**entry, "kid": "k1", "use": "sig", "alg": "RS256"}]}


def _handler(p: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._json(200, {"issuer": p.url, "authorization_endpoint": p.url + "/authorize",
                                 "token_endpoint": p.url + "/token",
                                 "jwks_uri": p.url + "/jwks",
                                 "code_challenge_methods_supported": ["S256"]})
            elif parts.path == "/jwks":
                self._json(200, p.jwks())
            elif parts.path == "/authorize":
                if q.get("client_id") != CLIENT_ID or q.get("code_challenge_method") != "S256" \
                        or "openid" not in q.get("scope", "").split():
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                p.codes[code] = q
                back = urlencode({"code": code, "state": q.get("state", "")})
                self.send_response(302)
                self.send_header("Location", f"{q['redirect_uri']}?{back}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            p.token_requests += 1
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self._json(401, {"error": "invalid_client"})
                return
            request = p.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if request is None or form.get("grant_type") != "authorization_code" \
                    or form.get("redirect_uri") != request.get("redirect_uri") \
                    or challenge != request.get("code_challenge"):
                self._json(400, {"error": "invalid_grant"})
                return
            self._json(200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                             "expires_in": 300, "id_token": p.id_token(request)})

    return Handler


@contextmanager
def running_provider() -> Iterator[Provider]:
    """A provider serving on 127.0.0.1 until the block ends."""
    provider = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
