"""deploy/grafana-dashboard.json and deploy/prometheus-alerts.yml: both load, and every metric
they query is in a scrape of a server that saw ordinary traffic. Unusual activity (repeated
login failures from one address, mass deletes by one principal, a robot used from a new
address) raises one UnusualActivity event (in the audit log as `alert.<kind>`) and counts in
`moorage_alerts_total{kind}`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.http import call, describe
from support.oci import make_image
from support.servers import BACKEND, start_local

pytestmark = pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="one node's worker processes")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PASSWORD = "metrics-deploy-admin-password"
ADMIN = ("admin", PASSWORD)
METRIC = re.compile(r"\bmoorage_[a-z0-9_]+")


def dashboard_exprs() -> list[str]:
    doc = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    assert doc["panels"], "no panels"
    return [t["expr"] for panel in doc["panels"] for t in panel["targets"]]


def alert_rules() -> list[dict[str, str]]:
    """The rules of the alert file, read by a check of its one simple shape (no YAML library
    here): `groups:` → `- name:` → `rules:` → `- alert:` with expr, labels.severity, summary."""
    text = (DEPLOY / "prometheus-alerts.yml").read_text()
    assert "\t" not in text
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[0] == "groups:" and lines[1].startswith("  - name: "), lines[:2]
    rules: list[dict[str, str]] = []
    for line in lines[2:]:
        key, _, val = line.strip().removeprefix("- ").partition(":")
        if line.startswith("      - alert:"):
            rules.append({"alert": val.strip()})
        elif rules and key in ("expr", "for", "severity", "summary", "description"):
            rules[-1][key] = val.strip()
    assert rules
    for rule in rules:
        assert {"alert", "expr", "severity", "summary"} <= rule.keys(), rule
        assert rule["severity"] in ("critical", "warning", "info"), rule
    return rules


def test_the_alert_rules_pass_promtool_when_it_is_installed():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (alert_rules() still checks the shape)")
    out = subprocess.run([promtool, "check", "rules", str(DEPLOY / "prometheus-alerts.yml")],
                         check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture(scope="module")
def reg(tmp_path_factory) -> Iterator:  # type: ignore[no-untyped-def]
    server = start_local(tmp_path_factory.mktemp("deploy") / "data", "--workers", "2",
                         auth=True, MOORAGE_ADMIN_PASSWORD=PASSWORD,
                         MOORAGE_ALERT_LOGIN_FAILURES="2", MOORAGE_ALERT_MASS_DELETES="3",
                         MOORAGE_METRICS_CACHE_SECONDS="0")
    yield server
    server.stop()


def _traffic(reg) -> None:  # type: ignore[no-untyped-def]
    """A push and a pull as admin, a token, a GC run, two refused logins from one address."""
    repo = "deploy/app"
    image = make_image()
    for blob in image.blobs:
        r = call("POST", f"{reg.url}/v2/{repo}/blobs/uploads/", auth=ADMIN,
                 params={"digest": blob.digest}, data=blob.data,
                 headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, describe(r)
    r = call("PUT", f"{reg.url}/v2/{repo}/manifests/v1", auth=ADMIN, data=image.body,
             headers={"Content-Type": image.media_type})
    assert r.status_code == 201, describe(r)
    r = call("GET", f"{reg.url}/v2/{repo}/manifests/v1", auth=ADMIN,
             headers={"Accept": image.media_type})
    assert r.status_code == 200, describe(r)
    r = call("GET", f"{reg.url}/v2/{repo}/blobs/{image.blobs[0].digest}", auth=ADMIN)
    assert r.status_code == 200, describe(r)
    assert call("GET", f"{reg.url}/token", auth=ADMIN).status_code == 200
    r = call("POST", f"{reg.url}/api/v1/gc", auth=ADMIN, json={"grace_period": 0})
    assert r.status_code == 200, describe(r)
    for _ in range(2):
        r = call("GET", f"{reg.url}/token", auth=("admin", "wrong-password"))
        assert r.status_code == 401, describe(r)


def scrape_names(reg) -> set[str]:  # type: ignore[no-untyped-def]
    r = call("GET", f"{reg.url}/metrics")
    assert r.status_code == 200, describe(r)
    names: set[str] = set()
    for family in text_string_to_metric_families(r.text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def test_every_metric_of_the_dashboard_and_the_alerts_is_scraped(reg):
    _traffic(reg)
    names = scrape_names(reg)
    referenced = {m for expr in [*dashboard_exprs(), *(r["expr"] for r in alert_rules())]
                  for m in METRIC.findall(expr)}
    assert len(referenced) > 15, referenced
    assert referenced - names == set(), sorted(names)


def test_repeated_login_failures_raise_one_alert_event_and_count(reg):
    def samples() -> dict[tuple[str, tuple], float]:
        text = call("GET", f"{reg.url}/metrics").text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}

    before = samples().get(("moorage_alerts_total", (("kind", "login_failures"),)), 0)
    failures = samples().get(("moorage_login_failures_total", ()), 0)
    source_failures = 2  # the threshold: a third failure in the window raises no second alert
    for _ in range(source_failures + 1):
        r = call("GET", f"{reg.url}/token", auth=("ghost", "nope"), source="127.0.0.7")
        assert r.status_code == 401, describe(r)
    after = samples()
    assert after[("moorage_alerts_total", (("kind", "login_failures"),))] == before + 1
    assert after[("moorage_login_failures_total", ())] == failures + source_failures + 1

    def alert_rows() -> list[dict]:
        r = call("GET", f"{reg.url}/api/v1/audit", auth=ADMIN,
                 params={"action": "alert.login_failures"})
        assert r.status_code == 200, describe(r)
        return [e for e in r.json()["events"] if e["remote"] == "127.0.0.7"]

    deadline = time.monotonic() + 30
    while not (rows := alert_rows()) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert len(rows) == 1, rows
    assert rows[0]["outcome"] == "alert" and rows[0]["detail"]["failures"] == 2, rows


def _alerts(reg, kind: str) -> float:  # type: ignore[no-untyped-def]
    text = call("GET", f"{reg.url}/metrics").text
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == "moorage_alerts_total" and s.labels == {"kind": kind}), 0.0)


def _audit_alerts(reg, kind: str, **match: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """The audit rows of alert `kind` matching `match`, once the consumers wrote one."""
    deadline = time.monotonic() + 30
    while True:
        r = call("GET", f"{reg.url}/api/v1/audit", auth=ADMIN, params={"action": f"alert.{kind}"})
        assert r.status_code == 200, describe(r)
        rows = [e for e in r.json()["events"] if all(e.get(k) == v for k, v in match.items())]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_mass_deletes_by_one_principal_raise_one_alert(reg):
    repo = "deploy/mass"
    image = make_image()
    for blob in image.blobs:
        r = call("POST", f"{reg.url}/v2/{repo}/blobs/uploads/", auth=ADMIN,
                 params={"digest": blob.digest}, data=blob.data)
        assert r.status_code == 201, describe(r)
    tags = [f"t{i}" for i in range(4)]
    for tag in tags:
        r = call("PUT", f"{reg.url}/v2/{repo}/manifests/{tag}", auth=ADMIN, data=image.body,
                 headers={"Content-Type": image.media_type})
        assert r.status_code == 201, describe(r)
    before = _alerts(reg, "mass_deletes")
    for tag in tags:  # 4 deletes, the threshold is 3: one alert
        r = call("DELETE", f"{reg.url}/v2/{repo}/manifests/{tag}", auth=ADMIN)
        assert r.status_code == 202, describe(r)
    rows = _audit_alerts(reg, "mass_deletes", actor="admin")
    assert len(rows) == 1 and rows[0]["detail"]["deletes"] == 3, rows
    assert _alerts(reg, "mass_deletes") == before + 1


def test_a_robot_used_from_a_new_address_raises_an_alert(reg):
    r = call("POST", f"{reg.url}/api/v1/namespaces", auth=ADMIN, json={"name": "robotns"})
    assert r.status_code == 201, describe(r)
    r = call("POST", f"{reg.url}/api/v1/robots", auth=ADMIN,
             json={"name": "ci", "permissions": {"robotns": ["pull", "push"]}})
    assert r.status_code == 201, describe(r)
    robot = (r.json()["name"], r.json()["secret"])
    for source in ("127.0.0.8", "127.0.0.8", "127.0.0.9"):
        r = call("GET", f"{reg.url}/token", auth=robot, source=source,
                 params={"scope": "repository:robotns/app:pull"})
        assert r.status_code == 200, describe(r)
    rows = _audit_alerts(reg, "robot_new_address", actor=robot[0])
    assert [row["remote"] for row in rows] == ["127.0.0.9"], rows
    assert _alerts(reg, "robot_new_address") >= 1
