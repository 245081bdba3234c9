"""Real clients through the token flow: skopeo (--src-creds/--dest-creds), the oras Python
client (login + push/pull), podman (login with an authfile, push, pull).

Images are built locally as OCI layouts (tests/clients/ocikit.py). Clients fail logins from
127.0.0.1, which counts against the shared server's per-address limit: at most one wrong
password per client here.
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest
from clients.ocikit import (
    OciLayout,
    podman_cli,
    read_layout,
    require_binary,
    run,
)
from clients.ocikit import make_image as make_oci_image

from .authkit import await_event, get_blob, get_manifest, uniq

pytestmark = pytest.mark.clients

REFUSED = re.compile(r"unauthori[sz]ed|denied|authentication required|401|403", re.IGNORECASE)


def skopeo(*args: str, check: bool = True):
    return run(["skopeo", "--insecure-policy", *args], check=check)


# ----------------------------------------------------------------------------------------------
# skopeo


def test_skopeo_with_credentials(world, tmp_path: Path):
    require_binary("skopeo")
    reg = world.reg
    user, pw = world.new_user()
    src = OciLayout(tmp_path / "src")
    image = src.add_image("v1", make_oci_image(extra_layer_bytes=64 * 1024))
    dest = f"docker://{reg.host}/{user}/app:v1"

    # push into the personal namespace (created on this first push)
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{user}:{pw}", src.ref("v1"), dest)
    r = get_manifest(reg, f"{user}/app", "v1", world.admin)
    assert r.status_code == 200 and r.content == image.manifest.data, r.status_code
    assert world.api.ok("GET", f"namespaces/{user}")["visibility"] == "private"

    # pull it back
    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", "--src-creds", f"{user}:{pw}", dest, f"oci:{out}:v1")
    assert read_layout(out)["v1"]["digest"] == image.digest

    # copy to another repository: the token carries pull on the source, blobs are mounted
    copy = f"docker://{reg.host}/{user}/copy:v1"
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        f"{user}:{pw}",
        "--dest-creds",
        f"{user}:{pw}",
        dest,
        copy,
    )
    assert get_manifest(reg, f"{user}/copy", "v1", world.admin).content == image.manifest.data
    for layer in image.layers:
        await_event(
            world.api,
            {"repository": f"{user}/copy"},
            action="blob.mount",
            reference=layer.digest,
            actor=user,
            outcome="success",
        )

    # no credentials, or someone else's: refused
    res = skopeo("copy", "--src-tls-verify=false", dest, f"oci:{tmp_path / 'anon'}:v1", check=False)
    assert res.returncode != 0 and REFUSED.search(res.stderr), res.describe()
    outsider = world.outsider
    res = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        f"{outsider[0]}:{outsider[1]}",
        dest,
        f"oci:{tmp_path / 'other'}:v1",
        check=False,
    )
    assert res.returncode != 0 and REFUSED.search(res.stderr), res.describe()
    # pushing into a namespace that is not the user's: refused, nothing written
    res = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{user}:{pw}",
        src.ref("v1"),
        f"docker://{reg.host}/{world.team}/{uniq('x')}:v1",
        check=False,
    )
    assert res.returncode != 0 and REFUSED.search(res.stderr), res.describe()
    # a wrong password: refused
    res = skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        f"{user}:{pw}x",
        dest,
        f"oci:{tmp_path / 'wrong'}:v1",
        check=False,
    )
    assert res.returncode != 0 and REFUSED.search(res.stderr), res.describe()


def test_skopeo_anonymous_pull_of_public_image_and_robot_push(world, tmp_path: Path):
    require_binary("skopeo")
    reg = world.reg
    robot, secret, _ = world.api.create_robot({world.pub: ["pull", "push"]})
    src = OciLayout(tmp_path / "src")
    image = src.add_image("v1", make_oci_image())
    ref = f"docker://{reg.host}/{world.pub}/{uniq('ci')}:v1"
    skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", f"{robot}:{secret}", src.ref("v1"), ref
    )
    out = tmp_path / "anon"
    skopeo("copy", "--src-tls-verify=false", ref, f"oci:{out}:v1")  # no credentials at all
    assert read_layout(out)["v1"]["digest"] == image.digest
    res = run(["skopeo", "list-tags", "--tls-verify=false", ref.rsplit(":", 1)[0]])
    assert json.loads(res.stdout)["Tags"] == ["v1"]
    # anonymous push to the public namespace: refused
    res = skopeo(
        "copy",
        "--dest-tls-verify=false",
        src.ref("v1"),
        f"docker://{reg.host}/{world.pub}/{uniq('anon')}:v1",
        check=False,
    )
    assert res.returncode != 0 and REFUSED.search(res.stderr), res.describe()


# ----------------------------------------------------------------------------------------------
# oras (Python)


@pytest.fixture
def oras_client(monkeypatch: pytest.MonkeyPatch):
    oras_client_mod = pytest.importorskip("oras.client")
    import oras.decorator

    # oras retries failures with long sleeps: fail fast instead
    monkeypatch.setattr(oras.decorator, "time", types.SimpleNamespace(sleep=lambda _s: None))

    def make(reg, auth_backend: str = "token"):
        return oras_client_mod.OrasClient(
            hostname=reg.host, insecure=True, tls_verify=False, auth_backend=auth_backend
        )

    return make


def test_oras_login_push_pull(world, tmp_path: Path, oras_client):
    """Push with oras's `basic` backend (Basic credentials on every /v2/ request), pull with its
    default `token` backend (Bearer challenge -> GET /token with the login -> retry).

    (oras-py's token backend cannot push here, nor to any registry that answers a token
    lacking push with 401 insufficient_scope as the token spec says: it first HEADs the blob,
    gets a pull token, and re-sends that cached token after the 401 of the upload; only a 403
    makes it fetch another.)"""
    reg = world.reg
    user, pw = world.new_user()
    config = tmp_path / "docker-config.json"
    pusher = oras_client(reg, "basic")
    pusher.login(username=user, password=pw, hostname=reg.host, config_path=str(config))
    assert config.exists(), "oras login wrote no credentials"

    data = tmp_path / "in" / "weights.bin"
    data.parent.mkdir()
    data.write_bytes(b"model weights " + bytes(range(256)) * 64)
    target = f"{reg.host}/{user}/model:v1"
    r = pusher.push(
        target=target,
        files=[f"{data}:application/vnd.moorage.weights"],
        config_path=str(config),
        disable_path_validation=True,
        quiet=True,
    )
    assert r.status_code == 201, (r.status_code, r.text[:500])
    digest = r.headers["Docker-Content-Digest"]
    assert get_manifest(reg, f"{user}/model", "v1", world.admin).status_code == 200

    # the token flow, with the credentials oras login stored
    puller = oras_client(reg)
    files = puller.pull(target=target, outdir=str(tmp_path / "out"), config_path=str(config))
    assert [Path(f).read_bytes() for f in files] == [data.read_bytes()]
    files = oras_client(reg).pull(
        target=f"{reg.host}/{user}/model@{digest}",
        outdir=str(tmp_path / "out2"),
        config_path=str(config),
    )
    assert [Path(f).read_bytes() for f in files] == [data.read_bytes()]
    # (the pulls went through the token endpoint: Basic on /v2/ leaves no `login` event)
    await_event(world.api, {"actor": user, "action": "login"}, outcome="success")

    # a client without credentials gets nothing from the private namespace
    empty_config = tmp_path / "empty-config.json"
    empty_config.write_text('{"auths": {}}')
    with pytest.raises(Exception):  # noqa: B017 - oras raises ValueError or HTTPError
        oras_client(reg).pull(
            target=target, outdir=str(tmp_path / "out3"), config_path=str(empty_config)
        )
    assert not (tmp_path / "out3" / "weights.bin").exists()
    # the blob stays out of reach of anonymous HTTP as well
    layer = json.loads(get_manifest(reg, f"{user}/model", "v1", world.admin).content)["layers"][0]
    assert get_blob(reg, f"{user}/model", layer["digest"]).status_code == 401


# ----------------------------------------------------------------------------------------------
# podman


@pytest.fixture
def podman(tmp_path: Path):
    with podman_cli(tmp_path) as call:
        yield call


def test_podman_login_push_pull(world, tmp_path: Path, podman):
    require_binary("skopeo")
    reg = world.reg
    user, pw = world.new_user()
    authfile = str(tmp_path / "auth.json")
    src = OciLayout(tmp_path / "src")
    image = src.add_image("v1", make_oci_image())
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{user}:{pw}",
        src.ref("v1"),
        f"docker://{reg.host}/{user}/app:v1",
    )

    # a wrong password is refused by `podman login`
    res = podman(
        "login",
        "--tls-verify=false",
        "--authfile",
        authfile,
        "-u",
        user,
        "-p",
        pw + "x",
        reg.host,
        check=False,
    )
    assert res.returncode != 0, res.describe()
    podman("login", "--tls-verify=false", "--authfile", authfile, "-u", user, "-p", pw, reg.host)
    name = f"{reg.host}/{user}/app:v1"
    podman("pull", "--tls-verify=false", "--authfile", authfile, name)
    info = json.loads(podman("image", "inspect", name).stdout)[0]
    assert info["Digest"] == image.digest, info

    pushed = f"{reg.host}/{user}/pushed:v2"
    podman("tag", name, pushed)
    podman("push", "--tls-verify=false", "--authfile", authfile, pushed)
    r = get_manifest(reg, f"{user}/pushed", "v2", world.admin)
    assert r.status_code == 200, r.status_code
    assert json.loads(r.content)["config"]["digest"] == image.config.digest

    # logged out: the private image cannot be pulled
    podman("logout", "--authfile", authfile, reg.host)
    podman("rmi", "--force", name, pushed, check=False)
    res = podman("pull", "--tls-verify=false", "--authfile", authfile, name, check=False)
    assert res.returncode != 0 and REFUSED.search(res.stderr), res.describe()
