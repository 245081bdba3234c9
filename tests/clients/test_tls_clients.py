"""podman over HTTPS: pull and push against `serve --tls-cert/--tls-key` with the test CA given
by `--cert-dir` (TLS verified, no --tls-verify=false). skopeo's HTTPS copy is in
tests/integration/test_tls.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ocikit import OciLayout, make_image, new_repo, podman_cli, require_binary, run
from support.tls import ScratchCA, start_tls

pytestmark = pytest.mark.clients


def test_podman_pulls_and_pushes_over_https_with_the_ca(tmp_path: Path):
    require_binary("skopeo")
    ca = ScratchCA(tmp_path)
    server, _, _ = start_tls(tmp_path, ca, "podman-tls")
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(ca.path, certs / "ca.crt")
    try:
        with podman_cli(tmp_path) as podman:
            repo, pushed = new_repo("tls-podman"), new_repo("tls-podman-pushed")
            src = OciLayout(tmp_path / "src")
            image = src.add_image("v1", make_image())
            run(["skopeo", "--insecure-policy", "copy", "--dest-cert-dir", str(certs),
                 src.ref("v1"), f"docker://{server.host}/{repo}:v1"])
            name = f"{server.host}/{repo}:v1"
            podman("pull", "--cert-dir", str(certs), name)
            info = json.loads(podman("image", "inspect", name).stdout)[0]
            assert info["Digest"] == image.digest, info
            podman("tag", name, f"{server.host}/{pushed}:v2")
            podman("push", "--cert-dir", str(certs), f"{server.host}/{pushed}:v2")
            refused = podman("pull", f"{server.host}/{pushed}:v2", check=False)
            assert refused.returncode != 0  # without the CA the certificate is not trusted
            run(["skopeo", "inspect", "--cert-dir", str(certs), f"docker://{server.host}/{pushed}:v2"])
    finally:
        server.stop()
