"""The UI without JavaScript: plain HTTP requests against a real server (tests/ui/conftest.py)."""

from __future__ import annotations

import html

import requests
from support.http import call

from .conftest import SIGNATURE_TYPE, World
from .pagekit import TIMEOUT, csrf_of, sign_in


def _get(s: requests.Session | None, url: str) -> requests.Response:
    r = (s or requests).get(url, timeout=TIMEOUT, allow_redirects=False)
    return r


def test_root_redirects_to_the_ui(world: World) -> None:
    r = call("GET", world.url + "/")
    assert (r.status_code, r.headers["Location"]) == (302, "/ui/")


def test_ui_pages_carry_the_security_headers(world: World) -> None:
    r = _get(None, world.url + "/ui/")
    assert r.status_code == 200
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_anonymous_visitors_see_public_repositories_only(world: World) -> None:
    page = _get(None, world.url + "/ui/").text
    assert world.public_repo in page
    assert world.private_ns not in page


def test_search_filters_repositories_without_javascript(world: World) -> None:
    hit = _get(None, world.url + "/ui/?q=" + world.public_repo.split("/")[0]).text
    miss = _get(None, world.url + "/ui/?q=nothing-matches-this").text
    assert world.public_repo in hit
    assert world.public_repo not in miss and "No repositories match" in miss


def test_sign_in_sets_an_httponly_samesite_session_cookie(world: World) -> None:
    s = requests.Session()
    token = csrf_of(s.get(world.url + "/ui/login", timeout=TIMEOUT).text)
    r = s.post(world.url + "/ui/login", data={"username": "admin", "password": world.admin[1],
                                              "csrf": token},
               allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303
    cookie = r.headers["Set-Cookie"]
    assert "moorage_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Signed in as <strong>admin</strong>" in s.get(world.url + "/ui/", timeout=TIMEOUT).text


def test_a_post_without_the_csrf_token_is_refused(world: World) -> None:
    s = requests.Session()
    s.get(world.url + "/ui/login", timeout=TIMEOUT)  # has the CSRF cookie, not the token
    r = s.post(world.url + "/ui/login", data={"username": "admin", "password": world.admin[1]},
               allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403
    assert "moorage_session" not in s.cookies


def test_a_csrf_token_of_another_visitor_is_refused(world: World) -> None:
    admin = sign_in(world.url, *world.admin)
    stolen = csrf_of(admin.get(world.url + "/ui/admin/robots", timeout=TIMEOUT).text)
    attacker = sign_in(world.url, *world.outsider)
    r = attacker.post(world.url + "/ui/admin/robots", data={
        "csrf": stolen, "name": "stolen", "namespace": world.public_repo.split("/")[0],
        "action_pull": "on"}, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403


def test_robots_cannot_sign_in(world: World) -> None:
    s = requests.Session()
    token = csrf_of(s.get(world.url + "/ui/login", timeout=TIMEOUT).text)
    r = s.post(world.url + "/ui/login", data={"username": world.robot[0],
                                              "password": world.robot[1], "csrf": token},
               allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403
    assert "robot accounts cannot sign in" in r.text
    assert "moorage_session" not in s.cookies


def test_a_wrong_password_is_refused(world: World) -> None:
    s = requests.Session()
    token = csrf_of(s.get(world.url + "/ui/login", timeout=TIMEOUT).text)
    r = s.post(world.url + "/ui/login", data={"username": world.outsider[0],
                                              "password": "wrong-password", "csrf": token},
               allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 401
    assert "moorage_session" not in s.cookies


def test_a_user_without_access_sees_nothing_of_a_private_namespace(world: World) -> None:
    s = sign_in(world.url, *world.outsider)
    secret_digest_page = f"/ui/manifest?name={world.private_repo}&ref=v1"
    pages = ["/ui/", f"/ui/repository?name={world.private_repo}", secret_digest_page,
             "/ui/admin", "/ui/admin/robots", "/ui/admin/audit",
             f"/ui/admin/namespace?name={world.private_ns}", "/ui/login"]
    for path in pages:
        r = _get(s, world.url + path)
        assert r.status_code in (200, 403, 404), (path, r.status_code)
        assert world.private_ns not in r.text, path
        assert world.private_ns not in html.unescape(r.text), path
    assert _get(s, world.url + f"/ui/repository?name={world.private_repo}").status_code == 404
    for query in (world.private_ns, world.private_repo, "secretapp"):
        # The page echoes what was typed; the results find nothing.
        results = _get(s, world.url + f"/ui/?q={query}").text.split('id="results"')[1]
        assert "<table" not in results
        assert "No namespaces match" in results and "No repositories match" in results


def test_an_admin_sees_the_private_namespace(world: World) -> None:
    s = sign_in(world.url, *world.admin)
    assert world.private_repo in _get(s, world.url + "/ui/").text


def test_tags_show_digest_platforms_marks_and_pull_commands(world: World) -> None:
    page = _get(None, world.url + f"/ui/repository?name={world.public_repo}&sort=semver").text
    assert page.index('data-tag="1.10.0"') < page.index('data-tag="1.2.0"')  # semantic order
    assert world.index.digest.split(":")[1][:12] in page
    assert "linux/amd64, linux/arm64" in page
    assert "immutable" in page  # rule 1.* of the namespace
    assert "soft-deleted" in page and ">old <" in page
    host = world.url.removeprefix("http://")
    assert f"docker pull {host}/{world.public_repo}:1.10.0" in page
    assert f"podman pull {host}/{world.public_repo}:1.10.0" in page
    assert f"oras pull {host}/{world.public_repo}:1.10.0" in page


def test_tags_sort_by_push_time(world: World) -> None:
    page = _get(None, world.url + f"/ui/repository?name={world.public_repo}&sort=pushed").text
    assert page.index('data-tag="latest"') < page.index('data-tag="1.2.0"')


def test_manifest_page_shows_platforms_and_referrers_of_an_index(world: World) -> None:
    page = _get(None, world.url + f"/ui/manifest?name={world.public_repo}&ref=latest").text
    assert 'id="entries"' in page and "linux/arm64" in page
    for child in world.index.children:
        assert f"ref={child.digest.replace(':', '%3A')}" in page
    assert world.referrer.digest.split(":")[1][:12] in page and SIGNATURE_TYPE in page
    assert ">signature<" in page


def test_manifest_page_of_an_image_shows_layers_and_config(world: World) -> None:
    child = world.index.children[1]
    page = _get(None, world.url + f"/ui/manifest?name={world.public_repo}&ref={child.digest}").text
    for layer in child.json["layers"]:
        assert layer["digest"].split(":")[1][:12] in page
    assert "application/vnd.oci.image.layer.v1.tar+gzip" in page
    assert "ARCH_NAME=arm64" in page and "/bin/app" in page
    assert "org.opencontainers.image.title" in page and "ADD rootfs.tar /" in page


def test_an_unknown_manifest_is_a_404_page(world: World) -> None:
    r = _get(None, world.url + f"/ui/manifest?name={world.public_repo}&ref=nope")
    assert r.status_code == 404 and "MANIFEST_UNKNOWN" in r.text


def test_admin_pages_list_namespace_gc_runs_jobs(world: World) -> None:
    s = sign_in(world.url, *world.admin)
    ns = world.public_repo.split("/")[0]
    overview = _get(s, world.url + "/ui/admin").text
    assert ns in overview and 'id="jobs"' in overview
    detail = _get(s, world.url + f"/ui/admin/namespace?name={ns}").text
    assert "<code>1.*</code>" in detail and "Dry-run plan" in detail


def test_audit_log_filters_by_action(world: World) -> None:
    s = sign_in(world.url, *world.admin)
    page = _get(s, world.url + "/ui/admin/audit?action=namespace.create").text
    assert world.private_ns in page
    assert "robot.create" not in page.split('id="audit"')[1]


def test_the_audit_log_is_for_admins_only_and_a_refusal_is_audited(world: World) -> None:
    s = sign_in(world.url, *world.outsider)
    assert _get(s, world.url + "/ui/admin/audit").status_code == 403
    admin = sign_in(world.url, *world.admin)
    page = _get(admin, world.url + f"/ui/admin/audit?actor={world.outsider[0]}&outcome=denied")
    rows = page.text.split('id="audit"')[1]
    assert "/ui/admin/audit" in rows and "admin-server" in rows


def test_sign_out_ends_the_session(world: World) -> None:
    s = sign_in(world.url, *world.outsider)
    token = csrf_of(_get(s, world.url + "/ui/").text)
    r = s.post(world.url + "/ui/logout", data={"csrf": token}, allow_redirects=False,
               timeout=TIMEOUT)
    assert r.status_code == 303
    assert "Sign in" in _get(s, world.url + "/ui/").text


def test_an_admin_creates_and_revokes_a_robot_with_forms(world: World) -> None:
    s = sign_in(world.url, *world.admin)
    form = _get(s, world.url + "/ui/admin/robots").text
    r = s.post(world.url + "/ui/admin/robots", data={
        "csrf": csrf_of(form), "name": "formbot", "namespace": world.public_repo.split("/")[0],
        "action_pull": "on", "action_push": "on"}, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 201 and 'id="robot-secret"' in r.text
    secret = r.text.split('id="robot-secret">')[1].split("<")[0]
    assert call("GET", world.url + "/v2/", auth=("robot$formbot", secret)).status_code == 200
    r = s.post(world.url + "/ui/admin/robots/revoke", data={
        "csrf": csrf_of(r.text), "name": "robot$formbot"}, allow_redirects=False,
        timeout=TIMEOUT)
    assert r.status_code == 303
    row = _get(s, world.url + "/ui/admin/robots").text.split("robot$formbot")[1].split("</tr>")[0]
    assert "revoked" in row
