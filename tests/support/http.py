"""HTTP plumbing of the tests: `requests` with a timeout on every call and a fresh connection
per request (so the requests of one upload spread over the server's worker processes), raw
byte-exact requests, credentials, and URL helpers.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from http.client import HTTPConnection
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

TIMEOUT = 60
CALL_TIMEOUT = 30  # call(): the access-control tests' requests

# ----------------------------------------------------------------------------------------------
# HTTP


class _Http:
    """`requests` with a default timeout and no connection reuse."""

    def request(self, method: str, url: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT)
        if method.upper() in ("HEAD", "DELETE", "PUT", "PATCH", "POST"):
            kw.setdefault("allow_redirects", False)
        return requests.request(method, url, **kw)

    def get(self, url: str, **kw: Any) -> requests.Response:
        return self.request("GET", url, **kw)

    def head(self, url: str, **kw: Any) -> requests.Response:
        return self.request("HEAD", url, **kw)

    def post(self, url: str, **kw: Any) -> requests.Response:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> requests.Response:
        return self.request("PUT", url, **kw)

    def patch(self, url: str, **kw: Any) -> requests.Response:
        return self.request("PATCH", url, **kw)

    def delete(self, url: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", url, **kw)


http = _Http()


def raw_request(
    base_url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send `path` byte-for-byte (no dot-segment normalisation, no re-encoding)."""
    parts = urlsplit(base_url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        elif method in ("POST", "PUT", "PATCH"):
            hdrs.setdefault("Content-Length", "0")
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read() if method != "HEAD" else b""
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def resolve(resp: requests.Response, location: str | None = None) -> str:
    """Absolute URL of a `Location` header (absolute or relative), resolved like a browser."""
    loc = location if location is not None else resp.headers.get("Location")
    assert loc, f"no Location header: {describe(resp)}"
    return urljoin(resp.url, loc)


def add_query(url: str, params: dict[str, Any] | Iterable[tuple[str, str]]) -> str:
    """Append query parameters to a URL, keeping the ones it already has."""
    parts = urlsplit(url)
    qs = parse_qsl(parts.query, keep_blank_values=True)
    items = params.items() if isinstance(params, dict) else params
    for k, v in items:
        if isinstance(v, list | tuple):
            qs.extend((k, str(x)) for x in v)
        else:
            qs.append((k, str(v)))
    query = urlencode(qs, safe=":", quote_via=quote)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def next_link(resp: requests.Response) -> str | None:
    """The absolute URL of a `Link: <...>; rel="next"` header, or None."""
    link = resp.headers.get("Link")
    if not link:
        return None
    m = re.search(r'<([^>]*)>\s*;\s*rel="?next"?', link)
    assert m, f"malformed Link header {link!r}"
    return urljoin(resp.url, m.group(1))


def describe(resp: requests.Response) -> str:
    """Short human-readable form of a response for assertion messages."""
    body = resp.content[:600] if resp.request.method != "HEAD" else b""
    hdrs = {k: v for k, v in resp.headers.items() if k.lower() not in ("date", "server")}
    return f"{resp.request.method} {resp.url} -> {resp.status_code} {hdrs} {body!r}"


# ----------------------------------------------------------------------------------------------
# credentials


class Bearer(AuthBase):
    """`Authorization: Bearer <token>`."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class RawAuth(AuthBase):
    """An Authorization header sent verbatim."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self.value
        return r


def basic_value(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def basic(username: str, password: str) -> RawAuth:
    """Basic credentials encoded as UTF-8 (requests would use latin-1)."""
    return RawAuth(basic_value(username, password))


class _SourceAdapter(HTTPAdapter):
    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def call(
    method: str, url: str, *, auth: Any = None, source: str | None = None, **kw: Any
) -> requests.Response:
    """One request (fresh connection) with a timeout; from `source` when given."""
    kw.setdefault("timeout", CALL_TIMEOUT)
    kw.setdefault("allow_redirects", False)
    if isinstance(auth, tuple):
        auth = basic(*auth)
    with requests.Session() as s:
        if source:
            s.mount("http://", _SourceAdapter(source))
        return s.request(method, url, auth=auth, **kw)
