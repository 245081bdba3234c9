"""The audit log: pushes, mounts, pulls, deletes, logins, denials and permission changes, read
through GET /api/v1/audit (JSON and JSON lines) and `moorage audit`."""

from __future__ import annotations

import json
import re
import time

from support.http import Bearer, call, describe
from support.oci import assert_error, v2

from .authkit import (
    all_scope,
    assert_denied,
    assert_unauthorized,
    await_event,
    cli_env,
    find_events,
    get_manifest,
    get_token,
    new_password,
    new_source,
    pull_scope,
    push_image,
    put_manifest,
    rfc3339_seconds,
    run_processes,
    small_image,
    start_upload,
    table_rows,
    token,
    uniq,
)

FIELDS = {
    "time",
    "actor",
    "actor_kind",
    "remote",
    "action",
    "repository",
    "reference",
    "outcome",
    "detail",
}


def _check_shape(events, since: float) -> None:
    for e in events:
        assert FIELDS <= set(e), e
        assert since - 1 <= rfc3339_seconds(e["time"]) <= time.time() + 1, e
        assert e["outcome"] in ("success", "denied", "failure"), e


def _one(events, **match):
    found = [e for e in events if all(e.get(k) == v for k, v in match.items())]
    assert len(found) >= 1, f"no event {match} in {json.dumps(events, indent=1)[:4000]}"
    return found[0]


def test_audit_records_pushes_mounts_pulls_and_deletes(world):
    reg, api = world.reg, world.api
    t0 = time.time()
    ns = api.create_namespace()
    (user,) = world.new_users(1)
    api.set_member(ns, user[0], "maintainer")
    repo, copy = f"{ns}/app", f"{ns}/copy"
    tok = Bearer(token(reg, user, all_scope(repo)))
    m = push_image(reg, repo, "v1", tok)
    config, layer = m.blobs

    tok2 = Bearer(token(reg, user, all_scope(copy), pull_scope(repo)))
    r = start_upload(reg, copy, tok2, mount=layer.digest, **{"from": repo})
    assert r.status_code == 201, describe(r)
    g = get_manifest(reg, repo, "v1", tok)
    assert g.status_code == 200, describe(g)
    for path in ("manifests/v1", f"manifests/{m.digest}", f"blobs/{layer.digest}"):
        d = call("DELETE", v2(reg, f"{repo}/{path}"), auth=tok)
        assert d.status_code == 202, describe(d)

    who = {"actor": user[0], "actor_kind": "user", "outcome": "success", "remote": "127.0.0.1"}
    where = {"repository": repo}
    await_event(api, where, action="blob.push", reference=config.digest, **who)
    await_event(api, where, action="blob.push", reference=layer.digest, **who)
    await_event(api, where, action="manifest.push", reference="v1", **who)
    await_event(api, where, action="manifest.pull", reference="v1", **who)
    await_event(api, where, action="tag.delete", reference="v1", **who)
    await_event(api, where, action="manifest.delete", reference=m.digest, **who)
    await_event(api, where, action="blob.delete", reference=layer.digest, **who)
    await_event(api, {"repository": copy}, action="blob.mount", reference=layer.digest, **who)
    events = api.audit(repository=repo, limit=1000)
    _check_shape(events, t0)
    # newest (last written) first: ids, not times, give the order (writes are batched)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True), ids


def test_audit_records_refused_writes_once_as_failures(world):
    """A push the registry refuses changes nothing, yet the attempt is on the record: one
    `failure` row naming the error; a denial stays one `access.*` row and no failure row."""
    reg, api = world.reg, world.api
    ns = api.create_namespace()
    (user,) = world.new_users(1)
    api.set_member(ns, user[0], "maintainer")
    repo = f"{ns}/refused"
    tok = Bearer(token(reg, user, all_scope(repo)))
    m = small_image()  # its blobs are never pushed
    r = put_manifest(reg, repo, "v1", m, tok)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    r = start_upload(reg, repo, tok)
    assert r.status_code == 202, describe(r)
    wrong = "sha256:" + "0" * 64
    loc = r.headers["Location"]
    r = call("PUT", f"{reg.url}{loc}{'&' if '?' in loc else '?'}digest={wrong}", data=b"x",
             auth=tok)
    assert_error(r, 400, "DIGEST_INVALID")
    reader = world.users["reader"]
    assert_denied(put_manifest(reg, f"{world.team}/{uniq('ro')}", "v1", m, reader))

    e = await_event(api, {"repository": repo}, action="manifest.push", outcome="failure")
    assert e["reference"] == "v1" and e["actor"] == user[0], e
    assert e["detail"]["code"] == "MANIFEST_BLOB_UNKNOWN" and e["detail"]["status"] == 400, e
    e = await_event(api, {"repository": repo}, action="blob.push", outcome="failure")
    assert e["reference"] == wrong and e["detail"]["code"] == "DIGEST_INVALID", e
    failures = api.audit(repository=repo, outcome="failure", limit=1000)
    assert len(failures) == 2, failures
    assert not api.audit(actor=reader[0], outcome="failure", limit=1000)


def test_audit_records_logins_and_denials(world):
    reg, api = world.reg, world.api
    t0 = time.time()
    (user,) = world.new_users(1)
    src = new_source()
    assert get_token(reg, auth=user).status_code == 200
    assert_error(get_token(reg, auth=(user[0], "wrong-" + user[1]), source=src), 401)
    mine = {"actor": user[0], "action": "login", "since": t0}
    await_event(api, mine, outcome="success", actor_kind="user", remote="127.0.0.1")
    await_event(api, mine, outcome="denied", remote=src)
    logins = api.audit(limit=1000, **mine)
    _check_shape(logins, t0)
    assert user[1] not in json.dumps(logins)

    team = world.team
    outsider = world.outsider[0]
    pull_repo, push_repo, del_repo, anon_repo = (f"{team}/{uniq('d')}" for _ in range(4))
    assert_denied(get_manifest(reg, pull_repo, "v1", world.outsider))
    assert_denied(start_upload(reg, push_repo, world.users["reader"]))
    assert_denied(
        call("DELETE", v2(reg, f"{del_repo}/manifests/v1"), auth=world.users["developer"])
    )
    assert_unauthorized(get_manifest(reg, anon_repo, "v1"))
    bad_src = new_source()
    assert_unauthorized(call("GET", v2(reg, ""), auth=(user[0], "nope-" + user[1]), source=bad_src))

    denied = {"outcome": "denied"}
    e = await_event(api, {"repository": pull_repo}, action="access.pull", **denied)
    assert e["actor"] == outsider, e
    assert (e["detail"] or {}).get("status") == 403, e
    e = await_event(api, {"repository": push_repo}, action="access.push", **denied)
    assert e["actor"] == world.users["reader"][0], e
    e = await_event(api, {"repository": del_repo}, action="access.delete", **denied)
    assert e["actor"] == world.users["developer"][0], e
    e = await_event(api, {"repository": anon_repo}, action="access.pull", **denied)
    assert e["actor"] in (None, "anonymous", ""), e
    e = await_event(api, {"action": "access.login", "since": t0}, remote=bad_src, **denied)
    assert e["actor"] == user[0], e
    assert user[1] not in json.dumps(e)


def test_denial_with_a_token_names_the_token_subject(world):
    """A request refused although its token is genuine: the audit event says whose token it
    was (the subject is known; only Basic credentials are merely 'claimed')."""
    reg, api = world.reg, world.api
    repo = f"{world.team}/{uniq('tokdeny')}"
    tok = Bearer(token(reg, world.outsider, all_scope(repo)))
    assert_denied(get_manifest(reg, repo, "v1", tok))
    e = await_event(api, {"repository": repo}, action="access.pull", outcome="denied")
    assert e["actor"] == world.outsider[0], e


def test_audit_records_permission_changes(world):
    api = world.api
    t0 = time.time()
    name, _pw = api.create_user()
    ns = api.create_namespace()
    api.ok("PATCH", f"namespaces/{ns}", json={"visibility": "public"})
    api.set_member(ns, name, "developer")
    assert api("DELETE", f"namespaces/{ns}/members/{name}").status_code == 204
    robot, secret, _ = api.create_robot({ns: ["pull"]})
    assert api("DELETE", f"robots/{robot}").status_code == 204
    api.ok("PATCH", f"users/{name}", json={"password": new_password()})
    api.ok("PATCH", f"users/{name}", json={"disabled": True})

    events = api.audit(actor="admin", since=t0, limit=1000)
    _check_shape(events, t0)
    assert secret not in json.dumps(events)
    admin = {"actor": "admin", "actor_kind": "user", "outcome": "success"}

    def with_detail(action: str, **detail):
        for e in events:
            if e["action"] == action and all(
                (e["detail"] or {}).get(k) == v for k, v in detail.items()
            ):
                assert all(e[k] == v for k, v in admin.items()), e
                return e
        raise AssertionError(f"no {action} {detail} in {json.dumps(events, indent=1)[:4000]}")

    with_detail("user.create", user=name)
    with_detail("namespace.create", namespace=ns)
    with_detail("namespace.update", namespace=ns, visibility="public")
    with_detail("member.set", namespace=ns, user=name, role="developer")
    with_detail("member.remove", namespace=ns, user=name)
    with_detail("robot.create", robot=robot.removeprefix("robot$"))
    with_detail("robot.revoke", robot=robot)
    with_detail("user.password", user=name)
    with_detail("user.disable", user=name)


def test_audit_filters_pagination_and_jsonl(world):
    reg, api = world.reg, world.api
    repo = f"{world.team}/{uniq('page')}"
    for _ in range(5):
        assert_denied(get_manifest(reg, repo, "v1", world.outsider))
    events = find_events(api, min_count=5, repository=repo)
    assert len(events) == 5, events
    assert all(e["action"] == "access.pull" and e["outcome"] == "denied" for e in events)

    # filters
    assert len(api.audit(repository=repo, action="access.pull", outcome="denied")) == 5
    assert api.audit(repository=repo, outcome="success") == []
    assert api.audit(repository=repo, action="manifest.pull") == []
    assert len(api.audit(repository=repo, actor=world.outsider[0])) == 5
    assert api.audit(repository=repo, actor=world.users["reader"][0]) == []
    times = sorted(e["time"] for e in events)
    newer = api.audit(repository=repo, since=times[2])
    older = api.audit(repository=repo, until=times[2])
    assert {e["time"] for e in newer} == set(times[2:]), (newer, times)
    assert {e["time"] for e in older} == set(times[:2]), (older, times)
    assert api.audit(repository=repo, since=time.time() + 60) == []

    # pages of 2, newest first, through next_cursor
    seen = []
    params = {"repository": repo, "limit": 2}
    for _ in range(10):
        body = api.ok("GET", "audit", params=params)
        seen += body["events"]
        assert len(body["events"]) <= 2, body
        if not body.get("next_cursor"):
            break
        params["cursor"] = body["next_cursor"]
    assert [json.dumps(e, sort_keys=True) for e in seen] == [
        json.dumps(e, sort_keys=True) for e in events
    ], (seen, events)

    # JSON lines
    r = api("GET", "audit", params={"repository": repo, "format": "jsonl"})
    assert r.status_code == 200, describe(r)
    assert "json" in r.headers.get("Content-Type", ""), describe(r)
    lines = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert r.text.endswith("\n") and len(r.text.splitlines()) == 5, r.text
    assert lines == events

    # bad parameters
    for bad in ({"limit": "many"}, {"since": "yesterday"}, {"cursor": "x"}):
        assert_error(api("GET", "audit", params=bad), 400)


def test_audit_cli_jsonl(world):
    reg, api = world.reg, world.api
    repo = f"{world.team}/{uniq('cli')}"
    m = push_image(reg, repo, "v1", world.users["developer"])
    assert_denied(get_manifest(reg, repo, "v1", world.outsider))
    find_events(api, min_count=4, repository=repo)  # 2 blobs, the manifest, the denial
    # two `moorage audit` processes side by side: JSON lines, and the table with a filter
    data_dir = str(reg.data_dir)
    jsonl, table = run_processes(
        [
            ["audit", "--data-dir", data_dir, "--jsonl", "--repository", repo],
            ["audit", "--data-dir", data_dir, "--repository", repo, "--outcome", "denied"],
        ],
        env=cli_env(reg),
    )
    lines = [json.loads(line) for line in jsonl.stdout.splitlines() if line.strip()]
    assert lines == api.audit(repository=repo), jsonl.stdout
    actions = {(e["action"], e["outcome"], e["actor"]) for e in lines}
    dev = world.users["developer"][0]
    assert ("manifest.push", "success", dev) in actions, actions
    assert ("blob.push", "success", dev) in actions, actions
    assert ("access.pull", "denied", world.outsider[0]) in actions, actions
    assert any(e["reference"] == m.blobs[0].digest for e in lines), lines
    rows = table_rows(table.stdout)
    assert len(rows) == 1 and rows[0]["ACTION"] == "access.pull", table.stdout
    assert rows[0]["ACTOR"] == world.outsider[0] and rows[0]["OUTCOME"] == "denied", table.stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", rows[0]["TIME"]), table.stdout


def test_audit_export_is_complete_beyond_one_page(world):
    """More events than the table's 100 and the API's page: `moorage audit --jsonl` and
    `GET /api/v1/audit?format=jsonl` export every one; a limit applies only when asked for."""
    reg, api = world.reg, world.api
    repo = f"{world.team}/{uniq('export')}"
    count = 130
    for _ in range(count):
        assert_denied(get_manifest(reg, repo, "v1", world.outsider))
    assert len(find_events(api, timeout=30, min_count=count, repository=repo)) == count
    r = api("GET", "audit", params={"repository": repo, "format": "jsonl"})
    assert r.status_code == 200, describe(r)
    exported = [json.loads(line) for line in r.text.splitlines()]
    assert len(exported) == count, len(exported)
    assert len({e["id"] for e in exported}) == count
    limited = api("GET", "audit", params={"repository": repo, "format": "jsonl", "limit": "7"})
    assert len(limited.text.splitlines()) == 7, limited.text
    data_dir = str(reg.data_dir)
    everything, seven, table = run_processes(
        [
            ["audit", "--data-dir", data_dir, "--jsonl", "--repository", repo],
            ["audit", "--data-dir", data_dir, "--jsonl", "--repository", repo, "--limit", "7"],
            ["audit", "--data-dir", data_dir, "--repository", repo],
        ],
        env=cli_env(reg),
    )
    lines = [json.loads(line) for line in everything.stdout.splitlines()]
    assert lines == exported, (len(lines), len(exported))
    assert [e["id"] for e in lines] == sorted((e["id"] for e in lines), reverse=True)
    assert len(seven.stdout.splitlines()) == 7, seven.stdout
    assert len(table_rows(table.stdout)) == 100, table.stdout  # the table's default limit
