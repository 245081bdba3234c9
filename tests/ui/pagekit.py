"""Plain-HTTP helpers of the UI tests: sign in with `requests`, read a form's CSRF token."""

from __future__ import annotations

import re

import requests

TIMEOUT = 60


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "the page has no form with a CSRF token"
    return m.group(1)


def sign_in(base: str, username: str, password: str) -> requests.Session:
    """A session signed in to the UI (asserts the sign-in succeeded)."""
    s = requests.Session()
    form = s.get(base + "/ui/login", timeout=TIMEOUT)
    assert form.status_code == 200, form.text
    r = s.post(base + "/ui/login", data={"username": username, "password": password,
                                         "csrf": csrf_of(form.text)},
               allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303, (r.status_code, r.text[:2000])
    assert "moorage_session" in s.cookies
    return s
