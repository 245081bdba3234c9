"""Each refusal is audited once, with its reason: on /v2/ and on the management API alike. A
mount without `from` looks for the blob among the repositories the caller may read; the others
are filtered out quietly (the caller named none of them), not audited as denials."""

from __future__ import annotations

import os
import time

from support.http import Bearer, describe
from support.oci import assert_error, digest_of

from .authkit import (
    await_event,
    find_events,
    get_blob,
    get_manifest,
    push_blob,
    push_scope,
    start_upload,
    token,
    uniq,
)

HOLDERS = 12


def test_mount_without_from_among_unreadable_repositories_audits_no_denial(world):
    reg, api = world.reg, world.api
    secret = api.create_namespace(uniq("vault"), "private")
    data = os.urandom(333)
    digest = digest_of(data)
    for i in range(HOLDERS):
        r = push_blob(reg, f"{secret}/r{i}", data, world.admin)
        assert r.status_code == 201, describe(r)
    (dev,) = world.new_users(1)
    target = f"{dev[0]}/copy"  # the caller's personal namespace: push allowed
    since = time.time() - 1
    tok = Bearer(token(reg, dev, push_scope(target)))
    for auth in (dev, tok):
        r = start_upload(reg, target, auth, mount=digest)
        assert r.status_code == 202, describe(r)  # an upload session: nothing was lent
    assert_error(get_blob(reg, target, digest, dev), 404, "BLOB_UNKNOWN")
    # A refusal the caller did ask for is audited, and marks the point the log has reached.
    assert get_manifest(reg, f"{secret}/r0", "v1", dev).status_code == 403
    await_event(api, {"actor": dev[0], "outcome": "denied"}, action="access.pull",
                repository=f"{secret}/r0")
    time.sleep(1.0)  # the other worker's queue, written "within moments"
    denied = find_events(api, actor=dev[0], outcome="denied", since=since)
    assert [(e["action"], e["repository"]) for e in denied] == [
        ("access.pull", f"{secret}/r0")], denied


def test_a_management_denial_is_audited_once_with_its_reason(world):
    api = world.api
    ns = api.create_namespace(uniq("ops"), "private")
    (dev,) = world.new_users(1)
    api.set_member(ns, dev[0], "developer")
    since = time.time() - 1
    r = world.api_as(dev)("PUT", f"namespaces/{ns}/quota", json={"limit_bytes": 10})
    assert_error(r, 403, "DENIED")
    reason = f"only an admin of namespace {ns!r} may change its policies"
    assert r.json()["errors"][0]["message"] == reason
    r = world.api_as(dev)("GET", "users")
    assert_error(r, 403, "DENIED")
    event = await_event(api, {"actor": dev[0], "action": "access.admin-server"},
                        outcome="denied")
    assert event["detail"]["reason"] == "only a server admin may do this", event
    assert event["detail"]["resource"] == "server", event
    events = find_events(api, actor=dev[0], outcome="denied", since=since, min_count=2)
    assert sorted(e["action"] for e in events) == ["access.admin-namespace",
                                                    "access.admin-server"], events
    quota = next(e for e in events if e["action"] == "access.admin-namespace")
    assert quota["actor_kind"] == "user" and quota["detail"]["reason"] == reason, quota
    assert quota["detail"]["resource"] == f"namespace:{ns}", quota
