"""The `oras` Python client (oras-py 0.2.x) against a running Moorage: push and pull file
artifacts (custom artifact types, monolithic and chunked uploads), attach referrers (manifests
with `subject`) and discover them through the referrers API.

oras-py has no `artifactType` parameter and no referrers call: an artifact type is either the
config media type (what `OrasClient.push(manifest_config="file:<type>")` produces, and what the
referrers API must report for a manifest without `artifactType`), or an explicit `artifactType`
field in a manifest assembled from oras's own building blocks (`oras.oci.NewLayer`,
`upload_blob`, `upload_manifest`). The referrers API is called through the client's session
(`OrasClient.do_request`).
"""

from __future__ import annotations

import hashlib
import json
import os
import types
from pathlib import Path

import pytest
from ocikit import OCI_INDEX, OCI_MANIFEST, new_repo, sha256_digest

pytestmark = pytest.mark.clients

pytest.importorskip("oras.client", reason="the `oras` PyPI package is not installed")
import jsonschema  # a dependency of oras
import oras.client
import oras.decorator
import oras.defaults
import oras.oci
import oras.schemas

MODEL_TYPE = "application/vnd.moorage.model.config.v1+json"
MODEL_LAYER = "application/vnd.moorage.model.weights.v1"
DATASET_TYPE = "application/vnd.moorage.dataset.v1"
SBOM_CONFIG = "application/vnd.moorage.sbom.config.v1+json"
SIGNATURE_TYPE = "application/vnd.moorage.signature.v1"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


@pytest.fixture
def client(registry, monkeypatch: pytest.MonkeyPatch) -> oras.client.OrasClient:
    # oras retries a 500 or a connection error 5 times, sleeping 2+3**n seconds in between
    # (over two minutes): fail fast instead, the error is reported all the same.
    monkeypatch.setattr(oras.decorator, "time", types.SimpleNamespace(sleep=lambda _s: None))
    return oras.client.OrasClient(hostname=registry.host, insecure=True, tls_verify=False)


def resp_text(r) -> str:
    return f"{r.request.method} {r.url} -> {r.status_code} {dict(r.headers)} {r.content[:600]!r}"


def check(r, *codes: int):
    assert r.status_code in codes, resp_text(r)
    return r


def fetch_manifest(client, registry, repo: str, ref: str) -> tuple[bytes, str]:
    r = check(
        client.do_request(
            f"{registry.url}/v2/{repo}/manifests/{ref}",
            "GET",
            headers={"Accept": ", ".join(oras.defaults.default_manifest_accepted_media_types)},
        ),
        200,
    )
    digest = r.headers.get("Docker-Content-Digest")
    assert digest == sha256_digest(r.content), resp_text(r)
    return r.content, digest


def chunk_size_for(registry) -> int:
    """A chunk size the server accepts (oras ignores OCI-Chunk-Min-Length by itself)."""
    import requests

    r = requests.post(
        f"{registry.url}/v2/{new_repo('probe')}/blobs/uploads/",
        headers={"Content-Length": "0"},
        timeout=30,
        allow_redirects=False,
    )
    assert r.status_code == 202, resp_text(r)
    minimum = int(r.headers.get("OCI-Chunk-Min-Length") or 0)
    requests.delete(requests.compat.urljoin(r.url, r.headers["Location"]), timeout=30)
    return max(256 * 1024, minimum)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_oras_push_pull_file_artifact(client, registry, tmp_path: Path, chunked: bool):
    """OrasClient.push of two files with a custom config (artifact) type; pull gets the bytes."""
    repo = new_repo("oras")
    weights = write(tmp_path / "in" / "weights.bin", os.urandom(1024 * 1024 + 123))
    notes = write(tmp_path / "in" / "README.md", b"# a model\nnothing to see\n")
    config = write(tmp_path / "in" / "config.json", json.dumps({"epochs": 3}).encode())
    target = f"{registry.host}/{repo}:v1"

    kwargs = {"do_chunked": True, "chunk_size": chunk_size_for(registry)} if chunked else {}
    r = client.push(
        target=target,
        files=[f"{weights}:{MODEL_LAYER}", str(notes)],
        manifest_config=f"{config}:{MODEL_TYPE}",
        manifest_annotations={"org.moorage.test": "push-pull"},
        disable_path_validation=True,
        quiet=True,
        **kwargs,
    )
    check(r, 201)
    pushed_digest = r.headers.get("Docker-Content-Digest")
    assert pushed_digest, resp_text(r)

    body, digest = fetch_manifest(client, registry, repo, "v1")
    assert digest == pushed_digest
    manifest = json.loads(body)
    assert manifest["config"]["mediaType"] == MODEL_TYPE
    assert manifest["config"]["digest"] == sha256_digest(config.read_bytes())
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        MODEL_LAYER,
        oras.defaults.default_blob_media_type,
    ]
    assert manifest["annotations"] == {"org.moorage.test": "push-pull"}
    assert client.get_tags(f"{registry.host}/{repo}") == ["v1"]

    out = tmp_path / "out"
    files = client.pull(target=target, outdir=str(out))
    assert sorted(Path(f).name for f in files) == ["README.md", "weights.bin"]
    assert (out / "weights.bin").read_bytes() == weights.read_bytes()
    assert (out / "README.md").read_bytes() == notes.read_bytes()
    # by digest as well
    out2 = tmp_path / "out2"
    client.pull(target=f"{registry.host}/{repo}@{digest}", outdir=str(out2))
    assert (out2 / "weights.bin").read_bytes() == weights.read_bytes()


def test_oras_artifact_type_referrers(client, registry, tmp_path: Path):
    """An artifact with an explicit artifactType, two referrers attached to it (one pushed with
    OrasClient.push(subject=...), one untagged with its own artifactType), discovered through
    GET /v2/<name>/referrers/<digest>, filtered by artifactType, and dropped when deleted."""
    repo = new_repo("referrers")
    registry_repo = f"{registry.host}/{repo}"
    container = client.get_container(f"{registry_repo}:dataset")

    # 1. the subject: a dataset artifact with an explicit artifactType (OCI 1.1 style)
    data = write(
        tmp_path / "in" / "train.csv",
        b"x,y\n" + b"".join(f"{i},{i * i}\n".encode() for i in range(5000)),
    )
    empty = write(tmp_path / "in" / "empty.json", b"{}")
    layer = oras.oci.NewLayer(str(data), media_type="text/csv")
    layer["annotations"] = {oras.defaults.annotation_title: "train.csv"}
    config = {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": EMPTY_JSON_DIGEST,
        "size": 2,
    }
    check(client.upload_blob(str(empty), container, config), 200, 201)
    check(client.upload_blob(str(data), container, layer), 200, 201)
    manifest = oras.oci.NewManifest()
    manifest["artifactType"] = DATASET_TYPE
    manifest["config"] = config
    manifest["layers"] = [layer]
    manifest["annotations"] = {"org.moorage.dataset": "train"}
    r = check(client.upload_manifest(manifest, container), 201)
    subject_body, subject_digest = fetch_manifest(client, registry, repo, "dataset")
    assert r.headers.get("Docker-Content-Digest") == subject_digest, resp_text(r)
    assert json.loads(subject_body)["artifactType"] == DATASET_TYPE
    files = client.pull(target=f"{registry_repo}:dataset", outdir=str(tmp_path / "pulled"))
    assert [Path(f).read_bytes() for f in files] == [data.read_bytes()]

    # nothing refers to it yet: 200 and an empty index
    listing = referrers(client, registry, repo, subject_digest)
    assert listing["manifests"] == [], listing

    subject = oras.oci.Subject(
        mediaType=OCI_MANIFEST, digest=subject_digest, size=len(subject_body)
    )

    # 2. referrer pushed by OrasClient.push(subject=...): no artifactType field, so the
    #    referrers API reports the config media type
    sbom = write(
        tmp_path / "in" / "sbom.spdx.json", json.dumps({"spdxVersion": "SPDX-2.3"}).encode()
    )
    sbom_cfg = write(tmp_path / "in" / "sbom-config.json", b'{"tool":"moorage-test"}')
    r = client.push(
        target=f"{registry_repo}:sbom",
        files=[f"{sbom}:application/spdx+json"],
        manifest_config=f"{sbom_cfg}:{SBOM_CONFIG}",
        manifest_annotations={"org.moorage.kind": "sbom"},
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    check(r, 201)
    assert r.headers.get("OCI-Subject") == subject_digest, (
        "PUT of a manifest with a subject must answer OCI-Subject: " + resp_text(r)
    )
    sbom_body, sbom_digest = fetch_manifest(client, registry, repo, "sbom")
    assert json.loads(sbom_body)["subject"]["digest"] == subject_digest

    # 3. untagged referrer with its own artifactType, pushed by digest with exact bytes
    sig = write(tmp_path / "in" / "sig.bin", os.urandom(256))
    sig_layer = oras.oci.NewLayer(str(sig), media_type="application/vnd.moorage.signature.blob")
    check(client.upload_blob(str(sig), container, sig_layer), 200, 201)
    sig_manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": config,
        "layers": [sig_layer],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_body)},
        "annotations": {"org.moorage.kind": "signature", "org.moorage.signer": "ci"},
    }
    sig_body = json.dumps(sig_manifest, indent=1).encode()
    sig_digest = "sha256:" + hashlib.sha256(sig_body).hexdigest()
    r = client.do_request(
        f"{registry.url}/v2/{repo}/manifests/{sig_digest}",
        "PUT",
        data=sig_body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    check(r, 201)
    assert r.headers.get("Docker-Content-Digest") == sig_digest, resp_text(r)
    assert r.headers.get("OCI-Subject") == subject_digest, resp_text(r)

    # 4. discovery
    listing = referrers(client, registry, repo, subject_digest)
    by_digest = {d["digest"]: d for d in listing["manifests"]}
    assert set(by_digest) == {sbom_digest, sig_digest}, listing
    # each descriptor carries the referrer's media type, digest, size, artifactType (the
    # manifest's own, else its config media type) and annotations
    expected = {
        sbom_digest: {
            "mediaType": OCI_MANIFEST,
            "digest": sbom_digest,
            "size": len(sbom_body),
            "artifactType": SBOM_CONFIG,
            "annotations": {"org.moorage.kind": "sbom"},
        },
        sig_digest: {
            "mediaType": OCI_MANIFEST,
            "digest": sig_digest,
            "size": len(sig_body),
            "artifactType": SIGNATURE_TYPE,
            "annotations": {"org.moorage.kind": "signature", "org.moorage.signer": "ci"},
        },
    }
    for digest, want in expected.items():
        got = by_digest[digest]
        assert {k: got.get(k) for k in want} == want, listing

    # filtering by artifactType (optional for a registry; if applied it must be announced)
    r = referrers_response(client, registry, repo, subject_digest, artifactType=SIGNATURE_TYPE)
    body = r.json()
    if "artifactType" in (r.headers.get("OCI-Filters-Applied") or ""):
        assert [d["digest"] for d in body["manifests"]] == [sig_digest], resp_text(r)
    else:
        assert {d["digest"] for d in body["manifests"]} == {sbom_digest, sig_digest}, resp_text(r)

    # the referrers themselves have no referrers; unknown subjects answer an empty index
    assert referrers(client, registry, repo, sig_digest)["manifests"] == []
    unknown = sha256_digest(os.urandom(16))
    assert referrers(client, registry, repo, unknown)["manifests"] == []

    # a referrer pulled through oras gives its file back
    files = client.pull(target=f"{registry_repo}:sbom", outdir=str(tmp_path / "sbom-out"))
    assert [Path(f).read_bytes() for f in files] == [sbom.read_bytes()]

    # 5. deleting a referrer removes it from the listing
    r = client.do_request(f"{registry.url}/v2/{repo}/manifests/{sig_digest}", "DELETE")
    check(r, 202)
    listing = referrers(client, registry, repo, subject_digest)
    assert [d["digest"] for d in listing["manifests"]] == [sbom_digest], listing


def referrers_response(client, registry, repo: str, digest: str, **params: str):
    url = f"{registry.url}/v2/{repo}/referrers/{digest}"
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    r = check(client.do_request(url, "GET"), 200)
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == OCI_INDEX, resp_text(r)
    return r


def referrers(client, registry, repo: str, digest: str) -> dict:
    r = referrers_response(client, registry, repo, digest)
    body = r.json()
    jsonschema.validate(body, schema=oras.schemas.index)
    assert body["schemaVersion"] == 2 and body["mediaType"] == OCI_INDEX, resp_text(r)
    assert isinstance(body["manifests"], list), resp_text(r)
    return body
