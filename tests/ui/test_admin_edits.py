"""Namespace admins edit with forms (plain HTTP, POST + CSRF): members and roles, the quota,
immutability rules, retention with its dry-run plan then applied; the audit log pages by id."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests
from support.http import call
from support.oci import make_image
from support.servers import TEST_DEFAULTS, cli_target, start_registry

from .conftest import ADMIN_PASSWORD, Quiet
from .pagekit import TIMEOUT, csrf_of, sign_in


def _ns_page(s: requests.Session, q: Quiet, ns: str | None = None) -> str:
    r = s.get(f"{q.url}/ui/admin/namespace?name={ns or q.ns}", timeout=TIMEOUT)
    assert r.status_code == 200, r.text[:500]
    return r.text


def _edit(s: requests.Session, q: Quiet, edit: str, ns: str | None = None,
          **fields: str) -> requests.Response:
    token = csrf_of(s.get(q.url + "/ui/", timeout=TIMEOUT).text)
    return s.post(f"{q.url}/ui/admin/namespace/{edit}",
                  data={"csrf": token, "name": ns or q.ns, **fields},
                  allow_redirects=False, timeout=TIMEOUT)


def _section(html: str, heading_id: str) -> str:
    return html.split(f'id="{heading_id}"')[1].split("</section>")[0]


def _new_ns(q: Quiet) -> str:
    ns = "ed" + uuid.uuid4().hex[:8]
    q.api("POST", "/namespaces", json={"name": ns})
    return ns


def test_an_admin_adds_changes_and_removes_a_member(quiet: Quiet) -> None:
    admin, ns = sign_in(quiet.url, "admin", ADMIN_PASSWORD), _new_ns(quiet)
    user = quiet.reader[0]
    assert _edit(admin, quiet, "member", ns, user=user, role="reader").status_code == 303
    row = _section(_ns_page(admin, quiet, ns), "mem-h").split(f'data-member="{user}"')[1]
    assert "<option selected>reader</option>" in row.split("</tr>")[0]
    assert _edit(admin, quiet, "member", ns, user=user, role="developer").status_code == 303
    row = _section(_ns_page(admin, quiet, ns), "mem-h").split(f'data-member="{user}"')[1]
    assert "<option selected>developer</option>" in row.split("</tr>")[0]
    members = call("GET", f"{quiet.url}/api/v1/namespaces/{ns}",
                   auth=("admin", ADMIN_PASSWORD)).json()["members"]
    assert members == [{"user": user, "role": "developer"}]
    assert _edit(admin, quiet, "member", ns, user=user, role="remove").status_code == 303
    assert f'data-member="{user}"' not in _ns_page(admin, quiet, ns)
    audit = admin.get(f"{quiet.url}/ui/admin/audit?action=member.remove", timeout=TIMEOUT).text
    assert ns in audit.split('id="audit"')[1]


def test_an_unknown_user_or_role_is_shown_as_an_error(quiet: Quiet) -> None:
    admin, ns = sign_in(quiet.url, "admin", ADMIN_PASSWORD), _new_ns(quiet)
    r = _edit(admin, quiet, "member", ns, user="nobody-" + uuid.uuid4().hex[:6], role="reader")
    assert r.status_code == 404 and 'id="edit-error"' in r.text
    r = _edit(admin, quiet, "member", ns, user=quiet.reader[0], role="emperor")
    assert r.status_code == 400 and "role must be one of" in r.text


def test_an_admin_sets_and_clears_the_quota(quiet: Quiet) -> None:
    admin, ns = sign_in(quiet.url, "admin", ADMIN_PASSWORD), _new_ns(quiet)
    assert _edit(admin, quiet, "quota", ns, limit="1.5GB").status_code == 303
    assert "(1500000000 bytes)" in _section(_ns_page(admin, quiet, ns), "quota-h")
    usage = call("GET", f"{quiet.url}/api/v1/namespaces/{ns}/quota",
                 auth=("admin", ADMIN_PASSWORD))
    assert usage.json()["limit_bytes"] == 1_500_000_000, usage.text
    r = _edit(admin, quiet, "quota", ns, limit="lots")
    assert r.status_code == 400 and "invalid size" in r.text
    assert _edit(admin, quiet, "quota", ns, limit="").status_code == 303
    assert "(no quota)" in _section(_ns_page(admin, quiet, ns), "quota-h")


def test_an_admin_adds_and_removes_an_immutability_rule(quiet: Quiet) -> None:
    admin, ns = sign_in(quiet.url, "admin", ADMIN_PASSWORD), _new_ns(quiet)
    assert _edit(admin, quiet, "immutability", ns, pattern="v*",
                 exceptions="v0*").status_code == 303
    section = _section(_ns_page(admin, quiet, ns), "imm-h")
    assert "<code>v*</code> except v0*" in section
    assert _edit(admin, quiet, "immutability-remove", ns, pattern="v*").status_code == 303
    assert "No rules." in _section(_ns_page(admin, quiet, ns), "imm-h")
    r = _edit(admin, quiet, "immutability-remove", ns, pattern="v*")
    assert r.status_code == 404 and "no immutability rule" in r.text


def test_retention_shows_the_dry_run_plan_then_applies_it(quiet: Quiet) -> None:
    admin, ns = sign_in(quiet.url, "admin", ADMIN_PASSWORD), _new_ns(quiet)
    repo = f"{ns}/svc"
    for tag in ("t1", "t2", "t3"):
        quiet.push(repo, make_image(layers=1), tag)
    assert _edit(admin, quiet, "retention", ns, repository=repo,
                 keep_last_pushed="1").status_code == 303
    section = _section(_ns_page(admin, quiet, ns), "ret-h")
    assert '{"keep_last_pushed": 1}' in section.replace("&#34;", '"')
    plan = section.split('id="plan"')[1]
    assert "would delete 2 tags" in plan and "<code>t1</code>, <code>t2</code>" in plan
    tags = call("GET", f"{quiet.url}/v2/{repo}/tags/list", auth=("admin", ADMIN_PASSWORD))
    assert sorted(tags.json()["tags"]) == ["t1", "t2", "t3"]  # a plan changes nothing
    r = _edit(admin, quiet, "retention-apply", ns)
    assert r.status_code == 303 and "flash=queued" in r.headers["Location"], r.text[:500]
    assert "Retention queued" in admin.get(quiet.url + r.headers["Location"],
                                           timeout=TIMEOUT).text
    # The server's job runner applies it (a moment later, not in the request).
    _wait(lambda: _job_state(_ns_page(admin, quiet, ns)) == "done", "the retention job")
    tags = call("GET", f"{quiet.url}/v2/{repo}/tags/list", auth=("admin", ADMIN_PASSWORD))
    assert tags.json()["tags"] == ["t3"]
    assert _edit(admin, quiet, "retention", ns, repository=repo, clear="1").status_code == 303
    assert "No policies." in _section(_ns_page(admin, quiet, ns), "ret-h")
    r = _edit(admin, quiet, "retention", ns, keep_days="soon")
    assert r.status_code == 400 and "numbers" in r.text


def _job_state(html: str) -> str | None:
    m = re.search(r'id="retention-job"[^>]*>Retention job (\d+): <strong class="job-state">'
                  r'(\w+)</strong>', html)
    return m.group(2) if m else None


def _job_id(html: str) -> int:
    m = re.search(r'id="retention-job"[^>]*>Retention job (\d+):', html)
    assert m, "the page shows no retention job"
    return int(m.group(1))


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_retention_apply_queues_one_job_at_a_time(tmp_path: Path) -> None:
    """With no job runner in the server, the job waits: a second click queues nothing more;
    `moorage worker` then applies it, in the name of the admin who clicked."""
    server = start_registry(tmp_path, "--workers", "1", auth=True,
                            MOORAGE_ADMIN_PASSWORD=ADMIN_PASSWORD, MOORAGE_JOBS_IN_SERVER="0",
                            MOORAGE_GC_INTERVAL="0", MOORAGE_UPLOAD_EXPIRY_INTERVAL="0",
                            MOORAGE_SBOM_ON_PUSH="0")
    worker = None
    try:
        q = Quiet(server, "", ("", ""), ("", ""), None)  # type: ignore[arg-type]
        ns = _new_ns(q)
        repo = f"{ns}/svc"
        for tag in ("t1", "t2", "t3"):
            q.push(repo, make_image(layers=1), tag)
        admin = sign_in(q.url, "admin", ADMIN_PASSWORD)
        assert _edit(admin, q, "retention", ns, repository=repo,
                     keep_last_pushed="1").status_code == 303
        first = _edit(admin, q, "retention-apply", ns)
        assert first.status_code == 303 and "flash=queued" in first.headers["Location"]
        page = admin.get(q.url + first.headers["Location"], timeout=TIMEOUT).text
        assert "Retention queued" in page and _job_state(page) == "queued"
        job = _job_id(page)
        second = _edit(admin, q, "retention-apply", ns)
        assert second.status_code == 303 and "flash=already" in second.headers["Location"]
        page = admin.get(q.url + second.headers["Location"], timeout=TIMEOUT).text
        assert "already queued or running" in page and _job_id(page) == job
        jobs = q.api("GET", "/jobs?kind=retention").json()["jobs"]
        assert [j["id"] for j in jobs] == [job], jobs
        tags = call("GET", f"{q.url}/v2/{repo}/tags/list", auth=("admin", ADMIN_PASSWORD))
        assert sorted(tags.json()["tags"]) == ["t1", "t2", "t3"]  # queued, not applied
        args, env = cli_target(server)
        worker = subprocess.Popen([sys.executable, "-m", "moorage", "worker", *args],
                                  env={**TEST_DEFAULTS, **os.environ, **env},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: _job_state(_ns_page(admin, q, ns)) == "done", "the worker to run it", 90)
        tags = call("GET", f"{q.url}/v2/{repo}/tags/list", auth=("admin", ADMIN_PASSWORD))
        assert tags.json()["tags"] == ["t3"]
        events = q.api("GET", "/audit?action=retention.apply").json()["events"]
        assert [(e["actor"], (e["detail"] or {}).get("namespace")) for e in events] == [
            ("admin", ns)], events
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        server.stop()


def test_a_non_admin_cannot_edit_and_learns_nothing(quiet: Quiet) -> None:
    dev = sign_in(quiet.url, *quiet.dev)
    r = _edit(dev, quiet, "quota", limit="1")
    assert r.status_code == 404 and quiet.ns not in r.text
    admin = sign_in(quiet.url, "admin", ADMIN_PASSWORD)
    assert "(no quota)" in _section(_ns_page(admin, quiet), "quota-h")


def test_an_edit_without_the_csrf_token_is_refused(quiet: Quiet) -> None:
    admin = sign_in(quiet.url, "admin", ADMIN_PASSWORD)
    r = admin.post(f"{quiet.url}/ui/admin/namespace/quota", data={"name": quiet.ns, "limit": "1"},
                   allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403
    assert "(no quota)" in _section(_ns_page(admin, quiet), "quota-h")


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)">', html)]


def test_the_audit_log_pages_older_and_newer_by_id(quiet: Quiet) -> None:
    ns = _new_ns(quiet)
    with requests.Session() as api:
        for i in range(105):
            r = api.put(f"{quiet.url}/api/v1/namespaces/{ns}/members/{quiet.reader[0]}",
                        json={"role": ("reader", "developer")[i % 2]},
                        auth=("admin", ADMIN_PASSWORD), timeout=TIMEOUT)
            assert r.status_code < 300, r.text
    admin = sign_in(quiet.url, "admin", ADMIN_PASSWORD)
    base = f"{quiet.url}/ui/admin/audit?action=member.set"
    first = admin.get(base, timeout=TIMEOUT).text
    page1 = _ids(first)
    assert len(page1) == 100 and page1 == sorted(page1, reverse=True)
    assert 'id="newer"' not in first
    older = re.search(r'href="(/ui/admin/audit\?[^"]+)" rel="next" id="older"', first)
    assert older, "no link to older events"
    second = admin.get(quiet.url + older.group(1).replace("&amp;", "&"), timeout=TIMEOUT).text
    page2 = _ids(second)
    assert page2 and max(page2) < min(page1)
    assert "action=member.set" in older.group(1)  # the filters are kept
    newer = re.search(r'href="(/ui/admin/audit\?[^"]+)" rel="prev" id="newer"', second)
    assert newer, "no link to newer events"
    back = _ids(admin.get(quiet.url + newer.group(1).replace("&amp;", "&"),
                          timeout=TIMEOUT).text)
    assert back == page1


def test_the_namespace_page_shows_its_pull_policy_and_trust(quiet: Quiet) -> None:
    ns = _new_ns(quiet)
    admin = sign_in(quiet.url, "admin", ADMIN_PASSWORD)
    section = _section(_ns_page(admin, quiet, ns), "pull-h")
    assert "No pull policy: every pull is served." in section
    assert "No trusted keys or identities." in section

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from support.servers import cli_target, run_moorage

    target, env = cli_target(quiet.server)
    run_moorage("policy", "set", ns, "--require-signature", "--deny-severity", "high",
                "--dry-run", *target, env=env)
    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    key = quiet.server.data_dir.parent / f"{ns}.pub"
    key.write_bytes(pem)
    run_moorage("trust", "add", ns, "--name", "release", "--key", str(key), *target, env=env)
    section = _section(_ns_page(admin, quiet, ns), "pull-h")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section))
    assert ("A pull needs a signature by a trusted key, no vulnerability of severity high or "
            "worse (dry run: denials are only logged and audited)." in text), text
    assert "release" in text and "No trusted keys" not in text, text
