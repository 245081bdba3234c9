"""Single sign-on to the UI with the test OIDC provider (tests/support/oidc_provider.py), plain
HTTP with redirects followed: the code flow signs in the account the claim names; a bad state,
a wrong nonce or audience, an expired token and an unknown account are refused."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from .conftest import ADMIN_GROUP, Quiet
from .pagekit import TIMEOUT


@pytest.fixture
def sso(quiet: Quiet) -> Iterator[Quiet]:
    quiet.provider.next = {}
    yield quiet
    quiet.provider.next = {}


def _sign_in(q: Quiet, **claims: object) -> tuple[requests.Session, requests.Response]:
    q.provider.next = claims
    s = requests.Session()
    return s, s.get(q.url + "/ui/sso", timeout=TIMEOUT)


def _signed_in_as(s: requests.Session, q: Quiet) -> str | None:
    page = s.get(q.url + "/ui/", timeout=TIMEOUT).text
    if "Signed in as <strong>" not in page:
        return None
    return page.split("Signed in as <strong>")[1].split("<")[0]


def test_the_login_page_offers_sso_when_configured(sso: Quiet) -> None:
    page = requests.get(sso.url + "/ui/login", timeout=TIMEOUT).text
    assert 'href="/ui/sso"' in page and "Sign in with SSO" in page


def test_sso_signs_in_the_account_the_claim_names(sso: Quiet) -> None:
    s, r = _sign_in(sso, preferred_username=sso.dev[0])
    assert r.status_code == 200 and r.url == sso.url + "/ui/", (r.status_code, r.url)
    assert [h.status_code for h in r.history] == [303, 302, 303]
    authorize = urlsplit(r.history[1].url)
    q = parse_qs(authorize.query)
    assert q["code_challenge_method"] == ["S256"] and q["nonce"][0] and q["state"][0]
    assert _signed_in_as(s, sso) == sso.dev[0]
    assert "moorage_sso" not in s.cookies  # a flow is used once


def test_the_admin_group_makes_a_server_admin(sso: Quiet) -> None:
    s, _ = _sign_in(sso, preferred_username=sso.reader[0], groups=[ADMIN_GROUP])
    assert _signed_in_as(s, sso) == sso.reader[0]
    assert s.get(sso.url + "/ui/admin/audit", timeout=TIMEOUT).status_code == 200
    s, _ = _sign_in(sso, preferred_username=sso.reader[0], groups=["others"])
    assert s.get(sso.url + "/ui/admin/audit", timeout=TIMEOUT).status_code == 403


def _callback_of(q: Quiet, s: requests.Session) -> str:
    """Start a sign-in and go to the provider; the callback URL it sends the browser to."""
    start = s.get(q.url + "/ui/sso", allow_redirects=False, timeout=TIMEOUT)
    assert start.status_code == 303
    back = s.get(start.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    assert back.status_code == 302
    return back.headers["Location"]


def test_a_bad_state_is_refused(sso: Quiet) -> None:
    sso.provider.next = {"preferred_username": sso.dev[0]}
    s = requests.Session()
    callback = urlsplit(_callback_of(sso, s))
    q = {k: v[0] for k, v in parse_qs(callback.query).items()}
    r = s.get(f"{sso.url}{callback.path}?{urlencode({**q, 'state': 'forged'})}",
              allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 401 and "state does not match" in r.text
    assert "moorage_session" not in s.cookies


def test_a_callback_without_the_flow_cookie_is_refused(sso: Quiet) -> None:
    sso.provider.next = {"preferred_username": sso.dev[0]}
    callback = _callback_of(sso, requests.Session())
    other = requests.Session()  # another browser replays the code and state
    r = other.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 401 and "was not started here" in r.text
    assert "moorage_session" not in other.cookies


@pytest.mark.parametrize(("claims", "reason"), [
    ({"nonce": "not-the-one"}, "nonce is not this sign-in's"),
    ({"aud": "another-client"}, "audience (aud) does not include"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "expired"),
    ({"iss": "http://127.0.0.1:1/elsewhere"}, "invalid token"),
])
def test_a_bad_id_token_is_refused(sso: Quiet, claims: dict, reason: str) -> None:  # type: ignore[type-arg]
    s, r = _sign_in(sso, preferred_username=sso.dev[0], **claims)
    assert r.status_code == 401 and reason in html.unescape(r.text), (r.status_code, r.text[:1500])
    assert _signed_in_as(s, sso) is None


def test_an_unknown_user_is_refused_when_creation_is_off(sso: Quiet) -> None:
    s, r = _sign_in(sso, preferred_username="stranger-from-sso")
    assert r.status_code == 401 and "there is no account 'stranger-from-sso'" in html.unescape(r.text)
    assert _signed_in_as(s, sso) is None
    users = requests.get(sso.url + "/api/v1/users", auth=("admin", _admin()),
                         timeout=TIMEOUT).json()
    assert "stranger-from-sso" not in str(users)


def test_a_robot_name_in_the_claim_is_refused(sso: Quiet) -> None:
    s, r = _sign_in(sso, preferred_username="robot$ci")
    assert r.status_code == 401 and "robot accounts cannot sign in" in r.text
    assert _signed_in_as(s, sso) is None


def _admin() -> str:
    from .conftest import ADMIN_PASSWORD

    return ADMIN_PASSWORD
