"""HTTPS: `serve --tls-cert/--tls-key` with a test CA; skopeo over HTTPS; challenges naming an
https realm; the certificate reloaded on SIGHUP while an upload on an old connection goes on."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.oci import digest_of, random_bytes, tar_layer
from support.servers import RegistryProcess
from support.tls import ScratchCA, peer_cn, served_cn, start_tls

PASSWORD = "tls-test-password-1"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ScratchCA:
    return ScratchCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, ca: ScratchCA
                 ) -> Iterator[RegistryProcess]:
    server, _, _ = start_tls(tmp_path_factory.mktemp("tls"), ca, "first", "--workers", "2",
                             auth=True, MOORAGE_ADMIN_PASSWORD=PASSWORD)
    yield server
    server.stop()


def test_https_answers_with_the_ca_and_challenges_name_an_https_realm(tls_registry, ca):
    """/v2/ over HTTPS verifies against the test CA; the challenge's realm is https, and
    X-Forwarded-* headers are ignored while trust_proxy_headers is off."""
    resp = requests.get(tls_registry.url + "/v2/", verify=str(ca.path), timeout=30,
                        headers={"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example"})
    assert resp.status_code == 401
    assert f'realm="https://127.0.0.1:{tls_registry.port}/token"' in resp.headers[
        "WWW-Authenticate"]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_registry.url + "/v2/", timeout=30)  # not a publicly trusted certificate


def test_plain_http_to_the_tls_port_gets_no_registry_answer(tls_registry):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_registry.port}/v2/", timeout=30)


def test_skopeo_pushes_and_pulls_over_https_with_the_ca(tls_registry, ca, tmp_path: Path):
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(ca.path, certs / "ca.crt")
    layout = tmp_path / "layout"
    _write_layout(layout)
    creds = f"admin:{PASSWORD}"
    ref = f"docker://{tls_registry.host}/tls/image:v1"
    _skopeo("copy", "--dest-cert-dir", str(certs), "--dest-creds", creds, f"oci:{layout}:v1", ref)
    out = tmp_path / "out"
    _skopeo("copy", "--src-cert-dir", str(certs), "--src-creds", creds, ref, f"oci:{out}:v1")
    pushed = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    pulled = json.loads((out / "index.json").read_text())["manifests"][0]["digest"]
    assert pulled == pushed
    # Without the CA skopeo refuses the registry: the certificate really is checked.
    refused = subprocess.run(["skopeo", "--insecure-policy", "inspect", "--creds", creds, ref],
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0 and "certificate" in refused.stderr


def test_sighup_reloads_the_certificate_while_an_old_connection_keeps_uploading(
    tmp_path: Path, ca: ScratchCA
):
    server, cert_file, key_file = start_tls(tmp_path, ca, "old", "--workers", "2")
    try:
        assert served_cn(server.port, ca) == "old"
        context = ssl.create_default_context(cafile=str(ca.path))
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        conn = context.wrap_socket(raw, server_hostname="127.0.0.1")
        assert peer_cn(conn) == "old"
        location = _request(conn, "POST", "/v2/tls/reload/blobs/uploads/", b"")[1]["location"]
        body = random_bytes(8 << 20)
        head = (f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n")
        conn.sendall(head.encode() + body[: len(body) // 2])

        ca.install("new", cert_file, key_file)
        server.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        _wait_for(lambda: served_cn(server.port, ca) == "new", "the new certificate")
        # Every worker has it (a new connection lands on either).
        assert {served_cn(server.port, ca) for _ in range(6)} == {"new"}

        conn.sendall(body[len(body) // 2:])
        status, headers = _read_response(conn)
        assert status == 202, headers
        assert headers["range"] == f"0-{len(body) - 1}"
        put = (f"PUT {headers['location']}{'&' if '?' in headers['location'] else '?'}digest="
               f"{digest_of(body)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        conn.sendall(put.encode())
        assert _read_response(conn)[0] == 201
        conn.close()

        # A certificate that does not load is refused and the last good one kept.
        cert_file.write_text("not a certificate\n")
        server.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        time.sleep(2)
        assert {served_cn(server.port, ca) for _ in range(4)} == {"new"}
        assert "TLS certificate not reloaded" in server.log_path.read_text()  # type: ignore[union-attr]
    finally:
        server.stop()


# -- helpers -------------------------------------------------------------------------------------


def _skopeo(*args: str) -> None:
    proc = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr


def _write_layout(path: Path) -> None:
    """A one-layer OCI image layout tagged v1."""
    layer = tar_layer()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (layer, config):
        (blobs / digest_of(data).split(":")[1]).write_bytes(data)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(layer), "size": len(layer)}],
    }).encode()
    (blobs / digest_of(manifest).split(":")[1]).write_bytes(manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest_of(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))


def _request(conn: ssl.SSLSocket, method: str, path: str, body: bytes) -> tuple[int, dict]:
    conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}"
                 f"\r\n\r\n".encode() + body)
    return _read_response(conn)


def _read_response(conn: ssl.SSLSocket) -> tuple[int, dict]:
    """Status and lower-cased headers of one response (its body read and dropped)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "connection closed before a response"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += conn.recv(65536)
    return int(lines[0].split()[1]), headers


def _wait_for(check, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_trusted_proxy_headers_name_the_realm_the_proxy_serves(tmp_path: Path):
    """Behind a TLS-terminating proxy (trust_proxy_headers on, the proxy in trusted_proxies)
    challenges name the proxy's https origin; a peer outside trusted_proxies is not believed."""
    from support.servers import start_local

    trusting = start_local(tmp_path / "a", auth=True, MOORAGE_TRUST_PROXY_HEADERS="1",
                           MOORAGE_TRUSTED_PROXIES="127.0.0.0/8")
    elsewhere = start_local(tmp_path / "b", auth=True, MOORAGE_TRUST_PROXY_HEADERS="1",
                            MOORAGE_TRUSTED_PROXIES="10.0.0.0/8")
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"}
    try:
        resp = requests.get(trusting.url + "/v2/", headers=forwarded, timeout=30)
        assert 'realm="https://registry.example.com/token"' in resp.headers["WWW-Authenticate"]
        resp = requests.get(elsewhere.url + "/v2/", headers=forwarded, timeout=30)
        assert f'realm="http://{elsewhere.host}/token"' in resp.headers["WWW-Authenticate"]
    finally:
        trusting.stop()
        elsewhere.stop()
