"""Webhooks end to end: a real server (jobs in the server, fast retries via settings) and a real
receiver on 127.0.0.1. A push arrives as one signed CloudEvent; a receiver answering 503 and
then down gets every event once it is back, once each, in order per repository; the delivery
history shows attempts and the last error; `redeliver` sends a given-up delivery again.

The server runs on SQLite + files in its data dir (start_local), so the CLI reaches it with
--data-dir whatever the test backend."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from support.oci import get_manifest, make_image, new_repo, push_blob, push_manifest
from support.servers import RegistryProcess, run_moorage, start_local
from support.webhooks import Receiver, verify

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
FAST = {"MOORAGE_WEBHOOK_BACKOFF_MAX": "0.5", "MOORAGE_JOB_POLL_INTERVAL": "0.1",
        "MOORAGE_EVENTS_POLL_INTERVAL": "0.05"}


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    r = Receiver()
    yield r
    r.stop()


def _cli(server: RegistryProcess, *args: str, input: str | None = None) -> Any:
    out = run_moorage("webhook", *args, "--data-dir", str(server.data_dir), input=input)
    return json.loads(out.stdout.strip().splitlines()[-1]) if "--json" in args else out.stdout


def _push(server: RegistryProcess, repo: str, tag: str) -> str:
    """Blobs, then the manifest by tag only (one ManifestPushed event); its digest."""
    image = make_image(layers=1)
    for blob in image.blobs:
        push_blob(server, repo, blob.data)
    return push_manifest(server, repo, image.body, image.media_type, ref=tag)


def _deliveries(server: RegistryProcess, name: str, *flags: str) -> list[dict[str, Any]]:
    return _cli(server, "deliveries", name, "--json", *flags)["deliveries"]


def _until(condition: Any, timeout: float, message: Any) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message()
        time.sleep(0.1)


def test_a_push_arrives_as_one_signed_cloud_event(tmp_path: Path, receiver: Receiver) -> None:
    server = start_local(tmp_path / "data", "--workers", "1", **FAST)
    try:
        repo = new_repo("hooks")
        namespace = repo.split("/")[0]
        _cli(server, "add", namespace, receiver.url, "--events", "push", "--secret-stdin",
             "--name", "ci", input=SECRET)
        digest = _push(server, repo, "v1")
        (got,) = receiver.wait(1)
        time.sleep(1.5)  # nothing else is on its way: one push, one event
        assert len(receiver.requests) == 1
        assert got.headers["content-type"] == "application/cloudevents+json"
        assert verify(SECRET, got)
        assert not verify("whsec_" + base64.b64encode(os.urandom(24)).decode(), got)
        event = got.event
        assert (event["specversion"], event["type"], event["subject"]) == (
            "1.0", "org.moorage.manifest.pushed", f"{repo}:v1")
        assert event["id"] == got.headers["webhook-id"]
        assert event["source"] == "/moorage/moorage"
        assert event["datacontenttype"] == "application/json"
        data = event["data"]
        assert (data["repository"], data["digest"], data["tag"]) == (repo, digest, "v1")
        assert data["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert data["size"] > 0
        (row,) = _deliveries(server, "ci")
        assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 1, 204)
    finally:
        server.stop()


def test_a_receiver_down_for_a_while_gets_every_event_once_in_order(
        tmp_path: Path, receiver: Receiver) -> None:
    server = start_local(tmp_path / "data", "--workers", "2", **FAST)
    try:
        a, b = new_repo("down"), new_repo("down")
        _cli(server, "add", a.split("/")[0], receiver.url, "--events", "push,tag",
             "--name", "down")
        receiver.fail_status = 503
        for tag in ("v1", "v2", "v3"):
            _push(server, a, tag)
        for tag in ("v1", "v2"):
            _push(server, b, tag)
        # Two events per push (manifest pushed, tag moved): 10 deliveries, the heads failing.
        _until(lambda: sum(r.status == 503 for r in receiver.requests) >= 4, 60,
               lambda: f"503 answers so far: {len(receiver.requests)}")
        rows = _deliveries(server, "down")
        assert len(rows) == 10
        tried = [r for r in rows if r["attempts"] > 0]
        assert tried and all(r["last_status"] == 503 and r["last_error"].startswith("HTTP 503")
                             for r in tried)
        assert {r["repository"] for r in tried} == {a, b}  # one head per repository
        receiver.stop()  # now nobody answers at all
        time.sleep(1.5)
        receiver.fail_status = None
        receiver.start()
        got = receiver.wait(10, timeout=90)
        time.sleep(1.5)
        got = receiver.delivered()
        ids = [r.headers["webhook-id"] for r in got]
        assert len(ids) == len(set(ids)) == 10, ids  # every event, none twice
        for repo in (a, b):
            mine = [int(r.event["id"]) for r in got if r.event["data"]["repository"] == repo]
            assert mine == sorted(mine), (repo, mine)
        assert all(r["status"] == "delivered" for r in _deliveries(server, "down"))
    finally:
        server.stop()


def test_redeliver_sends_a_given_up_delivery_again(tmp_path: Path, receiver: Receiver) -> None:
    server = start_local(tmp_path / "data", "--workers", "1", MOORAGE_WEBHOOK_MAX_AGE="0",
                         **FAST)
    try:
        repo = new_repo("redo")
        _cli(server, "add", repo.split("/")[0], receiver.url, "--events", "push",
             "--name", "redo")
        receiver.fail_status = 500
        _push(server, repo, "v1")
        _until(lambda: _deliveries(server, "redo", "--failed"), 60,
               lambda: f"no failed delivery: {_deliveries(server, 'redo')}")
        (failed,) = _deliveries(server, "redo", "--failed")
        assert (failed["attempts"], failed["last_status"]) == (1, 500)
        receiver.fail_status = None
        out = _cli(server, "redeliver", str(failed["id"]))
        assert "pending" in out
        (got,) = receiver.wait(1)
        assert got.headers["webhook-id"] == str(failed["event_id"])
        _until(lambda: _deliveries(server, "redo")[0]["status"] == "delivered", 30,
               lambda: _deliveries(server, "redo"))
        assert _deliveries(server, "redo", "--failed") == []
    finally:
        server.stop()


def test_the_management_api_and_the_cli_manage_webhooks_for_admins_only(
        tmp_path: Path, receiver: Receiver) -> None:
    from support.http import call

    password = "webhook-admin-password"
    server = start_local(tmp_path / "data", "--workers", "1", auth=True,
                         MOORAGE_ADMIN_PASSWORD=password)
    admin = ("admin", password)
    api = server.url + "/api/v1"
    try:
        r = call("POST", api + "/webhooks", auth=admin, json={
            "namespace": "team", "url": receiver.url, "events": ["push", "tag"],
            "secret": SECRET, "name": "api-hook"})
        assert r.status_code == 201, r.text
        assert (r.json()["name"], r.json()["signed"], r.json()["events"]) == (
            "api-hook", True, ["push", "tag"])
        assert "secret" not in r.json()
        r = call("POST", api + "/webhooks", auth=admin,
                 json={"namespace": "team", "url": "ftp://example.com/x"})
        assert r.status_code == 400, r.text
        assert "http:// or https://" in r.json()["errors"][0]["message"]
        cli = run_moorage("webhook", "add", "team", "file:///etc/passwd", "--data-dir",
                          str(server.data_dir), check=False)
        assert cli.returncode == 2 and "http:// or https://" in cli.stderr, cli.stderr

        r = call("POST", api + "/users", auth=admin,
                 json={"name": "dev", "password": "dev-password-1"})
        assert r.status_code == 201, r.text
        r = call("POST", api + "/webhooks", auth=("dev", "dev-password-1"),
                 json={"namespace": "team", "url": receiver.url})
        assert r.status_code == 403, r.text
        assert r.json()["errors"][0]["code"] == "DENIED"
        assert call("GET", api + "/webhooks", auth=("dev", "dev-password-1")).status_code == 403

        (hook,) = call("GET", api + "/webhooks", auth=admin).json()["webhooks"]
        assert (hook["name"], hook["pending"], hook["failed"]) == ("api-hook", 0, 0)
        r = call("GET", api + "/webhooks/api-hook/deliveries?failed=true", auth=admin)
        assert (r.status_code, r.json()) == (200, {"deliveries": []})
        r = call("GET", api + "/webhooks/nope/deliveries", auth=admin)
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        r = call("POST", api + "/deliveries/99999999999999999999999/redeliver", auth=admin)
        assert r.status_code == 404, r.text  # no such delivery, not a database overflow
        r = call("POST", api + "/deliveries/x1/redeliver", auth=admin)
        assert r.status_code == 400, r.text
        r = call("POST", api + "/deliveries/12345/redeliver", auth=admin)
        assert r.status_code == 404, r.text
        assert call("DELETE", api + "/webhooks/api-hook", auth=admin).status_code == 204
        assert call("GET", api + "/webhooks", auth=admin).json() == {"webhooks": []}
    finally:
        server.stop()


def test_scan_and_policy_events_reach_only_the_webhooks_subscribed_to_them(
        tmp_path: Path, receiver: Receiver) -> None:
    # scanning on: the SBOM job scans each pushed image (the tests turn it off by default)
    server = start_local(tmp_path / "data", "--workers", "1", **FAST, MOORAGE_SBOM_ON_PUSH="1",
                         MOORAGE_PULL_POLICY_CACHE_SECONDS="0.2")
    plain = Receiver()
    try:
        repo = new_repo("watch")
        namespace = repo.split("/")[0]
        _cli(server, "add", namespace, receiver.url, "--events", "scan,policy", "--name", "sec")
        _cli(server, "add", namespace, plain.url, "--events", "push,pull,delete,tag,replication",
             "--name", "plain")

        def of_type(r: Receiver, kind: str) -> list[dict[str, Any]]:
            return [x.event for x in r.delivered() if x.event["type"] == kind]

        digest = _push(server, repo, "v1")
        _until(lambda: of_type(receiver, "org.moorage.scan.completed"), 90,
               lambda: f"no scan event: {[x.event['type'] for x in receiver.delivered()]}")
        scanned = [e for e in of_type(receiver, "org.moorage.scan.completed")
                   if e["data"]["digest"] == digest]
        assert len(scanned) == 1 and scanned[0]["data"]["repository"] == repo
        assert scanned[0]["data"]["scan"]["status"] in ("done", "unsupported", "failed")

        run_moorage("policy", "set", namespace, "--require-signature", "--data-dir",
                    str(server.data_dir))
        time.sleep(0.5)  # the server's cached policy expires
        assert get_manifest(server, repo, "v1").status_code == 403
        _until(lambda: of_type(receiver, "org.moorage.pull.denied"), 30,
               lambda: f"no policy event: {[x.event['type'] for x in receiver.delivered()]}")
        (denied,) = of_type(receiver, "org.moorage.pull.denied")
        assert (denied["data"]["repository"], denied["data"]["digest"]) == (repo, digest)
        assert denied["data"]["policy"]["rule"] == "require-signature"
        assert denied["data"]["policy"]["dryRun"] is False
        assert "not signed" in denied["data"]["policy"]["message"]

        run_moorage("policy", "set", namespace, "--require-signature", "--dry-run",
                    "--data-dir", str(server.data_dir))
        time.sleep(0.5)
        assert get_manifest(server, repo, "v1").status_code == 200
        _until(lambda: len(of_type(receiver, "org.moorage.pull.denied")) == 2, 30,
               lambda: "no dry-run policy event")
        assert of_type(receiver, "org.moorage.pull.denied")[1]["data"]["policy"]["dryRun"]

        time.sleep(1.5)  # anything else on its way has arrived
        assert {x.event["type"] for x in receiver.delivered()} <= {
            "org.moorage.scan.completed", "org.moorage.vulnerability.found",
            "org.moorage.secret.found", "org.moorage.pull.denied"}
        kinds = {x.event["type"] for x in plain.delivered()}
        assert "org.moorage.manifest.pushed" in kinds  # it is subscribed, and it did get events
        assert not {k for k in kinds if ".scan." in k or k.endswith(".found")
                    or k == "org.moorage.pull.denied"}, kinds
    finally:
        plain.stop()
        server.stop()
