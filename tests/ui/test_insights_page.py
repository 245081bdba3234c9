"""Size insights on the manifest page (plain HTTP): "not computed yet" with a button for users
who may push, the queued job's report (layer bars, largest, deleted, shared bytes, advice)."""

from __future__ import annotations

import gzip
import time

import requests
from support.oci import OCI_LAYER_GZIP, OCI_LAYER_TAR, Blob, make_image, tar_of

from .conftest import Quiet
from .pagekit import TIMEOUT, csrf_of, sign_in

MB = 1_000_000
JOB_WAIT = 120.0  # a loaded 2-core box runs the job late


def _page(s: requests.Session, q: Quiet, repo: str, ref: str) -> requests.Response:
    return s.get(f"{q.url}/ui/manifest?name={repo}&ref={ref}", timeout=TIMEOUT)


def _insights(html: str) -> str:
    return html.split('id="insights"')[1].split("</section>")[0]


def test_a_developer_queues_insights_and_sees_the_report(quiet: Quiet) -> None:
    repo = f"{quiet.ns}/app"
    base = Blob(gzip.compress(tar_of({"etc/os-release": b"ID=debian\n"}), mtime=0),
                OCI_LAYER_GZIP)
    build = Blob(tar_of({"root/.cache/pip/wheels/torch.whl": 11 * MB,
                         "tmp/build.log": 1 * MB}), OCI_LAYER_TAR)
    fix = Blob(gzip.compress(tar_of({"tmp/.wh.build.log": b""}), mtime=0), OCI_LAYER_GZIP)
    quiet.push(f"{quiet.ns}/base", make_image(layer_blobs=[base]), "v1")
    digest = quiet.push(repo, make_image(layer_blobs=[base, build, fix]), "v1")
    dev = sign_in(quiet.url, *quiet.dev)
    page = _page(dev, quiet, repo, "v1")
    assert page.status_code == 200
    section = _insights(page.text)
    assert "not computed yet" in section and "Compute size insights" in section
    r = dev.post(quiet.url + "/ui/manifest/insights", data={
        "csrf": csrf_of(section), "name": repo, "digest": digest},
        allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303 and digest.replace(":", "%3A") in r.headers["Location"]
    deadline = time.monotonic() + JOB_WAIT
    while "not computed yet" in section and time.monotonic() < deadline:
        time.sleep(0.5)
        section = _insights(_page(dev, quiet, repo, digest).text)
    assert 'id="insights-layers"' in section, section[:500]
    assert section.count('<meter class="bar"') == 3
    assert f'max="{len(build.data)}" value="{len(build.data)}"' in section  # the widest
    assert "/root/.cache/pip/wheels/torch.whl" in section.split('id="insights-largest"')[1]
    wasted = section.split('id="insights-wasted"')[1]
    assert "Deleted by a later layer" in wasted and "/tmp/build.log" in wasted
    assert "1 other image" in section  # the base layer, shared with base:v1
    assert "pip cache left in layer 2" in section.split('id="insights-advice"')[1]


def test_a_reader_sees_no_button_and_may_not_queue(quiet: Quiet) -> None:
    repo = f"{quiet.ns}/readonly"
    digest = quiet.push(repo, make_image(layers=1), "v1")
    reader = sign_in(quiet.url, *quiet.reader)
    section = _insights(_page(reader, quiet, repo, "v1").text)
    assert "not computed yet" in section and "Compute size insights" not in section
    token = csrf_of(reader.get(quiet.url + "/ui/", timeout=TIMEOUT).text)
    r = reader.post(quiet.url + "/ui/manifest/insights", data={
        "csrf": token, "name": repo, "digest": digest}, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403 and "DENIED" in r.text


def test_an_outsider_cannot_queue_insights_of_a_private_image(quiet: Quiet) -> None:
    repo = f"{quiet.ns}/hidden"
    digest = quiet.push(repo, make_image(layers=1), "v1")
    anonymous = requests.Session()
    token = csrf_of(anonymous.get(quiet.url + "/ui/login", timeout=TIMEOUT).text)
    r = anonymous.post(quiet.url + "/ui/manifest/insights", data={
        "csrf": token, "name": repo, "digest": digest}, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 404 and repo not in r.text
