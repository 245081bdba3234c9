"""Immutable tags, quotas, soft delete and retention, over HTTP with policies set by the CLI
(and the management API with access control on)."""

from __future__ import annotations

import time
import uuid

import requests
from support.http import describe, http
from support.oci import (
    assert_error,
    blob_url,
    digest_of,
    list_tags,
    make_artifact,
    make_image,
    manifest_url,
    pull_and_verify,
    push_manifest,
    push_tree,
    put_manifest,
    random_bytes,
    uploads_url,
)

from .helpers import store_consistency


def _ns() -> str:
    return "ns" + uuid.uuid4().hex[:10]


def test_immutable_tags_refuse_moves_and_deletes_naming_the_rule(lc):
    reg, cli = lc
    ns = _ns()
    repo = f"{ns}/model"
    cli.run("immutability", "add", ns, "v*", "--except", "v*-dev")
    first, second = make_image(1), make_image(1)
    push_tree(reg, repo, first, tag="v1")
    push_tree(reg, repo, second)
    push_manifest(reg, repo, first.body, first.media_type, ref="v1")  # identical re-push: fine
    r = put_manifest(reg, repo, "v1", second.body, second.media_type)
    assert_error(r, 403, "DENIED")
    assert "'v*'" in r.text and "v1" in r.text, r.text
    r = http.delete(manifest_url(reg, repo, "v1"))
    assert_error(r, 403, "DENIED")
    assert "'v*'" in r.text
    assert_error(http.delete(manifest_url(reg, repo, first.digest)), 403, "DENIED")
    # exceptions and other tags move freely
    push_manifest(reg, repo, first.body, first.media_type, ref="v2-dev")
    push_manifest(reg, repo, second.body, second.media_type, ref="v2-dev")
    push_manifest(reg, repo, first.body, first.media_type, ref="latest")
    push_manifest(reg, repo, second.body, second.media_type, ref="latest")
    assert http.delete(manifest_url(reg, repo, "latest")).status_code == 202
    # the rule can be lifted
    cli.run("immutability", "remove", ns, "v*")
    push_manifest(reg, repo, second.body, second.media_type, ref="v1")


def test_quota_refuses_pushes_with_usage_and_limit_and_counts_shared_content_once(lc):
    reg, cli = lc
    ns = _ns()
    image = make_image(1)
    size = sum(len(b.data) for b in image.blobs) + len(image.body)
    cli.run("quota", "set", ns, str(size + 100))
    push_tree(reg, f"{ns}/a", image, tag="v1")
    push_tree(reg, f"{ns}/b", image, tag="v1")  # the same content again: counts once
    usage = cli.json("quota", "show", ns)
    assert usage["usage_bytes"] == size and usage["limit_bytes"] == size + 100, usage
    assert usage["repositories"] == {f"{ns}/a": size, f"{ns}/b": size}

    # a declared size over the quota is refused before any byte is stored
    big = random_bytes(5000)
    r = http.post(uploads_url(reg, f"{ns}/a") + f"?digest={digest_of(big)}", data=big)
    assert_error(r, 403, "DENIED")
    assert f"{size + 100} bytes" in r.text and f"{size} bytes" in r.text, r.text
    assert http.head(blob_url(reg, f"{ns}/a", digest_of(big))).status_code == 404

    # an upload that declares nothing is caught when the manifest is pushed
    other = make_image(1)
    for b in other.blobs:
        r = http.post(uploads_url(reg, f"{ns}/a"))
        loc = requests.compat.urljoin(reg.url, r.headers["Location"])
        chunked = http.put(loc + ("&" if "?" in loc else "?") + f"digest={b.digest}",
                           data=iter([b.data]))  # chunked transfer: no Content-Length
        assert chunked.status_code == 201, describe(chunked)
    r = put_manifest(reg, f"{ns}/a", "v2", other.body, other.media_type)
    assert_error(r, 403, "DENIED")
    assert "quota" in r.text
    cli.run("quota", "set", ns, "none")
    push_manifest(reg, f"{ns}/a", other.body, other.media_type, ref="v2")


def test_deleted_tags_are_restorable_then_collected(make_registry):
    reg, cli = make_registry()  # default restore window (7 days)
    repo = f"{_ns()}/app"
    image = make_image(1)
    push_tree(reg, repo, image, tag="v1")
    assert http.delete(manifest_url(reg, repo, "v1")).status_code == 202
    assert_error(http.get(manifest_url(reg, repo, "v1")), 404, "MANIFEST_UNKNOWN")
    assert cli.gc("0")["manifests"] == 0  # a restorable tag keeps its image
    listed = cli.run("tag", "deleted", repo).stdout
    assert "v1" in listed and image.digest in listed
    out = cli.run("tag", "restore", f"{repo}:v1").stdout
    assert image.digest in out
    pull_and_verify(reg, repo, "v1")
    # after the window, the tag is forgotten and GC takes the image
    assert http.delete(manifest_url(reg, repo, "v1")).status_code == 202
    cli.env["MOORAGE_TAG_RESTORE_WINDOW"] = "0"
    report = cli.gc("0")
    assert report["deleted_tags_expired"] == 1 and report["manifests"] == 1, report
    assert cli.run("tag", "restore", f"{repo}:v1", check=False).returncode == 1


def test_retention_plan_lists_exactly_what_apply_deletes(lc):
    reg, cli = lc
    ns = _ns()
    repo = f"{ns}/train"
    images = {}
    for i in range(5):
        images[f"run-{i}"] = make_image(1)
        push_tree(reg, repo, images[f"run-{i}"], tag=f"run-{i}")
        time.sleep(0.01)
    push_manifest(reg, repo, images["run-0"].body, images["run-0"].media_type, ref="stable")
    signature = make_artifact(subject=images["run-1"])
    push_tree(reg, repo, signature)
    # pull run-2 so that keep_last_pulled keeps it
    assert http.get(manifest_url(reg, repo, "run-2")).status_code == 200
    time.sleep(0.6)  # pull times are flushed every 0.2 s in these tests
    cli.run("retention", "set", ns, "--keep-last-pushed", "3", "--keep-last-pulled", "1",
            "--keep-tags", "stable")
    plan = cli.json("retention", "plan", ns)
    doomed = sorted(t["tag"] for r in plan["repositories"] for t in r["tags"])
    assert doomed == ["run-0", "run-1"], plan
    # run-1 and its signature go; run-0 stays reachable through `stable`
    unique = sum(len(b.data) for b in images["run-1"].blobs) + len(images["run-1"].body)
    sig_bytes = sum(len(b.data) for b in signature.blobs) + len(signature.body)
    assert plan["bytes_freed"] == unique + sig_bytes, plan
    assert plan["manifests_after_restore_window"] == 2
    assert sorted(list_tags(reg, repo).json()["tags"]) == sorted([*images, "stable"])  # dry run

    applied = cli.json("retention", "apply", ns)
    assert applied["tags"] == 2 and applied["bytes_freed"] == plan["bytes_freed"], applied
    assert sorted(list_tags(reg, repo).json()["tags"]) == ["run-2", "run-3", "run-4", "stable"]
    report = cli.gc("0")
    assert report["manifests"] == 2, report
    assert http.get(manifest_url(reg, repo, signature.digest)).status_code == 404
    for tag in ("run-2", "run-3", "run-4", "stable"):
        pull_and_verify(reg, repo, tag)
    assert store_consistency(reg.data_dir) == {"missing_bytes": [], "dangling_refs": []}


def test_retention_untagged_rule_keeps_referrers_of_kept_subjects(lc):
    reg, cli = lc
    ns = _ns()
    repo = f"{ns}/app"
    kept = make_image(1)
    push_tree(reg, repo, kept, tag="v1")
    sbom = make_artifact(subject=kept)
    push_tree(reg, repo, sbom)
    loose = make_image(1)
    push_tree(reg, repo, loose)  # untagged, no subject
    cli.run("retention", "set", ns, "--untagged-days", "0")
    plan = cli.json("retention", "plan", ns)
    assert plan["manifests"] == 1 and plan["tags"] == 0, plan
    cli.json("retention", "apply", ns)
    assert http.get(manifest_url(reg, repo, loose.digest)).status_code == 404
    assert http.get(manifest_url(reg, repo, sbom.digest)).status_code == 200


def test_policy_changes_need_a_namespace_admin_and_are_audited(make_registry):
    reg, _ = make_registry(auth=True, MOORAGE_ADMIN_PASSWORD="admin-secret-1")
    admin = ("admin", "admin-secret-1")
    api = reg.url + "/api/v1"
    assert http.post(api + "/namespaces", json={"name": "team"}, auth=admin).status_code == 201
    assert http.post(api + "/users", json={"name": "dev", "password": "dev-secret-1"},
                     auth=admin).status_code == 201
    assert http.put(api + "/namespaces/team/members/dev", json={"role": "developer"},
                    auth=admin).status_code == 200
    dev = ("dev", "dev-secret-1")
    r = http.put(api + "/namespaces/team/quota", json={"limit_bytes": 10}, auth=dev)
    assert_error(r, 403, "DENIED")
    r = http.put(api + "/namespaces/team/quota", json={"limit_bytes": 10_000}, auth=admin)
    assert r.status_code == 200 and r.json()["limit_bytes"] == 10_000, describe(r)
    r = http.post(api + "/namespaces/team/immutability",
                  json={"pattern": "release-*", "exceptions": ["latest"]}, auth=admin)
    assert r.status_code == 201, describe(r)
    r = http.put(api + "/namespaces/team/retention", json={"rules": {"keep_last_pushed": 3}},
                 auth=admin)
    assert r.status_code == 200, describe(r)
    r = http.put(api + "/namespaces/team/retention", json={"rules": {"keep_forever": 1}},
                 auth=admin)
    assert_error(r, 400, "UNSUPPORTED")
    r = http.post(api + "/namespaces/team/retention/plan", auth=admin)
    assert r.status_code == 200 and r.json()["applied"] is False, describe(r)
    assert_error(http.post(api + "/gc", json={"dry_run": True}, auth=dev), 403, "DENIED")
    r = http.post(api + "/gc", json={"dry_run": True, "grace_period": "1h"}, auth=admin)
    assert r.status_code == 200 and r.json()["dry_run"] is True, describe(r)
    events = http.get(api + "/audit", auth=admin).json()["events"]
    actions = {e["action"] for e in events}
    assert {"quota.set", "immutability.set", "retention.set"} <= actions, actions


def test_every_lifecycle_route_is_in_the_openapi_document():
    import json

    from moorage.web.api import OPENAPI_PATH, LifecycleAPI

    doc = json.loads(OPENAPI_PATH.read_text())
    api = LifecycleAPI.__new__(LifecycleAPI)
    for method, path, _ in LifecycleAPI.routes(api):
        assert method.lower() in doc["paths"].get(path, {}), f"{method} {path} undocumented"
