"""Durability: uploads and content survive a graceful restart and a crash (kill -9), a crash in
the middle of a push leaves no visible or corrupt blob, and SIGTERM shuts down cleanly.

Every test runs its own server (`fresh_registry`, one worker unless said otherwise) that it stops,
restarts on the same data dir and port, or SIGKILLs with its whole process group.
Everything a server acknowledged (a 202 with a Range, a 201) must be there after the restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import psutil
import pytest
import requests

TIMEOUT = 60
MiB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
HEX_RE = re.compile(r"[a-f0-9]{64}(?:[a-f0-9]{64})?")


# ----------------------------------------------------------------------------------------------
# HTTP helpers (self-contained: plain requests, a timeout on every call, no redirects followed)


def describe(r: requests.Response) -> str:
    body = r.content[:500] if r.request.method != "HEAD" else b""
    return f"{r.request.method} {r.url} -> {r.status_code} {dict(r.headers)} {body!r}"


def req(method: str, url: str, **kw) -> requests.Response:
    kw.setdefault("timeout", TIMEOUT)
    kw.setdefault("allow_redirects", False)
    return requests.request(method, url, **kw)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def new_repo() -> str:
    return f"durability/{uuid.uuid4().hex[:12]}"


def location(r: requests.Response) -> str:
    loc = r.headers.get("Location")
    assert loc, f"no Location: {describe(r)}"
    return urljoin(r.url, loc)


def parse_range(r: requests.Response) -> tuple[int, int]:
    value = r.headers.get("Range")
    assert value, f"no Range header: {describe(r)}"
    m = re.fullmatch(r"(?:bytes=)?(\d+)-(\d+)", value.strip())
    assert m, f"malformed Range {value!r}: {describe(r)}"
    return int(m.group(1)), int(m.group(2))


def start_upload(reg, repo: str) -> tuple[str, int]:
    """POST a new upload session -> (absolute Location, minimum chunk length)."""
    r = req("POST", f"{reg.url}/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202, describe(r)
    return location(r), int(r.headers.get("OCI-Chunk-Min-Length") or 0)


def patch_chunk(loc: str, data: bytes, start: int) -> requests.Response:
    return req(
        "PATCH",
        loc,
        data=data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
            "Content-Range": f"{start}-{start + len(data) - 1}",
        },
    )


def put_final(loc: str, digest: str) -> requests.Response:
    sep = "&" if "?" in loc else "?"
    return req(
        "PUT",
        f"{loc}{sep}digest={digest}",
        headers={"Content-Length": "0", "Content-Type": "application/octet-stream"},
    )


def upload_status(loc: str) -> requests.Response:
    return req("GET", loc)


def push_blob(reg, repo: str, data: bytes) -> str:
    """POST + PUT with the whole body (monolithic); returns the digest."""
    loc, _ = start_upload(reg, repo)
    digest = digest_of(data)
    sep = "&" if "?" in loc else "?"
    r = req(
        "PUT",
        f"{loc}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
    )
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    return digest


def push_image(reg, repo: str, tag: str) -> dict:
    """Push a config, a layer and a manifest tagged `tag`; return what to check later."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest_of(os.urandom(32))]},
            "author": uuid.uuid4().hex,
        }
    ).encode()
    layer = os.urandom(300 * 1024)
    blobs = {push_blob(reg, repo, config): config, push_blob(reg, repo, layer): layer}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}],
        }
    ).encode()
    r = req(
        "PUT",
        f"{reg.url}/v2/{repo}/manifests/{tag}",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest_of(manifest), describe(r)
    return {"repo": repo, "tag": tag, "manifest": manifest, "blobs": blobs}


def assert_blob(reg, repo: str, digest: str, data: bytes) -> None:
    r = req("GET", f"{reg.url}/v2/{repo}/blobs/{digest}", allow_redirects=True)
    assert r.status_code == 200, describe(r)
    assert len(r.content) == len(data) and r.content == data, f"blob {digest}: bytes differ"
    assert digest_of(r.content) == digest


def assert_image(reg, image: dict) -> None:
    repo, manifest = image["repo"], image["manifest"]
    for ref in (image["tag"], digest_of(manifest)):
        r = req("GET", f"{reg.url}/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200, describe(r)
        assert r.content == manifest, f"manifest {repo}:{ref}: bytes differ"
        assert r.headers.get("Docker-Content-Digest") == digest_of(manifest), describe(r)
    for digest, data in image["blobs"].items():
        assert_blob(reg, repo, digest, data)


def chunks_for(min_len: int, count: int) -> list[bytes]:
    """`count` random chunks each at least the server's minimum chunk length."""
    size = max(1 * MiB, min_len)
    return [os.urandom(size + i * 1000) for i in range(count)]


def restart(reg, sig: int = signal.SIGTERM) -> int | None:
    """Stop (SIGTERM; or kill -9 of the process group) and start again, same dir and port."""
    if sig == signal.SIGKILL:
        reg.kill()
        code = None
    else:
        code = reg.stop(sig)
    reg.start()
    return code


def check_blob_store(data_dir: Path) -> dict[str, Path]:
    """Hash every file under DIR/blobs whose name starts with a hex digest; fail on a mismatch.
    Returns digest -> path of every blob file found."""
    found: dict[str, Path] = {}
    bad: list[str] = []
    for path in sorted((data_dir / "blobs").rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(data_dir / "blobs")
        # Files are named `<hex>-<upload id>` (older data dirs: `<hex>`).
        hexes = [p.split("-", 1)[0] for p in reversed(rel.parts)
                 if HEX_RE.fullmatch(p.split("-", 1)[0])]
        if not hexes:
            continue
        hexd = hexes[0]
        algo = "sha256" if len(hexd) == 64 else "sha512"
        h = hashlib.new(algo)
        with open(path, "rb") as f:
            while block := f.read(4 * MiB):
                h.update(block)
        if h.hexdigest() != hexd:
            bad.append(f"{rel} ({path.stat().st_size} bytes) hashes to {algo}:{h.hexdigest()}")
        found[f"{algo}:{hexd}"] = path
    assert not bad, "blob files whose content does not match their name:\n" + "\n".join(bad)
    return found


def sqlite_ok(data_dir: Path) -> None:
    db = data_dir / "moorage.db"
    assert db.is_file(), f"no {db}"
    con = sqlite3.connect(db, timeout=10)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()


# ----------------------------------------------------------------------------------------------
# deterministic large content, generated on the fly


class BigContent:
    """`size` bytes: 1 MiB of random bytes with each MiB's first 8 bytes set to its index."""

    def __init__(self, size: int):
        self.size = size
        self.base = os.urandom(MiB)
        h = hashlib.sha256()
        for block in self.blocks():
            h.update(block)
        self.digest = "sha256:" + h.hexdigest()

    def block(self, i: int) -> bytes:
        n = min(MiB, self.size - i * MiB)
        return (i.to_bytes(8, "big") + self.base[8:])[:n]

    def blocks(self, start: int = 0) -> Iterator[bytes]:
        """Blocks from byte offset `start`."""
        i, skip = divmod(start, MiB)
        while i * MiB < self.size:
            b = self.block(i)
            yield b[skip:] if skip else b
            skip = 0
            i += 1


class SizedReader:
    """A file-like body with a length, so requests sends Content-Length and streams it."""

    def __init__(self, content: BigContent, start: int):
        self._it = content.blocks(start)
        self._buf = b""
        self._len = content.size - start

    def __len__(self) -> int:
        return self._len

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self._buf) < n) and (nxt := next(self._it, None)) is not None:
            self._buf += nxt
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def stream_patch(loc: str, content: BigContent, start: int = 0) -> requests.Response:
    """PATCH the rest of `content` from `start` with Content-Range and Content-Length."""
    return req(
        "PATCH",
        loc,
        data=SizedReader(content, start),
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(content.size - start),
            "Content-Range": f"{start}-{content.size - 1}",
        },
        timeout=120,
    )


def full_push(reg, repo: str, content: BigContent) -> None:
    """POST, one streamed PATCH (chunked transfer encoding, no Content-Range), PUT ?digest=."""
    loc, _ = start_upload(reg, repo)
    r = req(
        "PATCH",
        loc,
        data=content.blocks(),
        timeout=120,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 202, describe(r)
    assert parse_range(r) == (0, content.size - 1), describe(r)
    r = put_final(location(r), content.digest)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == content.digest, describe(r)


def assert_big_blob(reg, repo: str, content: BigContent) -> None:
    with req(
        "GET",
        f"{reg.url}/v2/{repo}/blobs/{content.digest}",
        stream=True,
        allow_redirects=True,
        timeout=120,
    ) as r:
        assert r.status_code == 200, describe(r)
        h, n = hashlib.sha256(), 0
        for part in r.iter_content(4 * MiB):
            h.update(part)
            n += len(part)
    assert n == content.size and "sha256:" + h.hexdigest() == content.digest


def uploads_bytes(data_dir: Path) -> int:
    total = 0
    for p in (data_dir / "uploads").rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def running(pids: list[int]) -> list[int]:
    """The pids that still run (zombies waiting for a reaper do not count)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


# ----------------------------------------------------------------------------------------------
# tests


@pytest.mark.parametrize("workers", [1, 2])
def test_chunked_upload_survives_graceful_restart(fresh_registry, workers: int):
    reg = fresh_registry
    if workers != 1:
        reg.stop()
        reg.extra_args = [*reg.extra_args, "--workers", str(workers)]  # keeps the backend flags
        reg.start()
    repo = new_repo()
    loc, min_len = start_upload(reg, repo)
    chunks = chunks_for(min_len, 3)
    data = b"".join(chunks)

    offset = 0
    for chunk in chunks[:2]:
        r = patch_chunk(loc, chunk, offset)
        assert r.status_code == 202, describe(r)
        offset += len(chunk)
        assert parse_range(r) == (0, offset - 1), describe(r)
        loc = location(r)

    code = restart(reg)
    assert code == 0, f"SIGTERM exit code {code}; log: {reg.log_path.read_text()[-3000:]}"

    r = upload_status(loc)
    assert r.status_code == 204, describe(r)
    assert parse_range(r) == (0, offset - 1), describe(r)
    loc = location(r)

    r = patch_chunk(loc, chunks[2], offset)
    assert r.status_code == 202, describe(r)
    assert parse_range(r) == (0, len(data) - 1), describe(r)
    r = put_final(location(r), digest_of(data))
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest_of(data), describe(r)
    assert_blob(reg, repo, digest_of(data), data)
    check_blob_store(reg.data_dir)


def test_acknowledged_state_survives_kill_9(fresh_registry):
    """kill -9 after every acknowledged step of a chunked upload; nothing acknowledged is lost."""
    reg = fresh_registry
    repo = new_repo()
    image = push_image(reg, repo, "before")
    loc, min_len = start_upload(reg, repo)

    restart(reg, signal.SIGKILL)  # the empty session itself was acknowledged (202)
    r = upload_status(loc)
    assert r.status_code == 204, describe(r)
    assert r.headers.get("Range", "0-0") in ("0-0", "bytes=0-0"), describe(r)

    chunks = chunks_for(min_len, 3)
    data = b"".join(chunks)
    offset = 0
    for chunk in chunks:
        r = patch_chunk(loc, chunk, offset)
        assert r.status_code == 202, describe(r)
        offset += len(chunk)
        assert parse_range(r) == (0, offset - 1), describe(r)
        loc = location(r)

        restart(reg, signal.SIGKILL)
        r = upload_status(loc)
        assert r.status_code == 204, f"after kill -9 at offset {offset}: {describe(r)}"
        assert parse_range(r) == (0, offset - 1), f"after kill -9: {describe(r)}"
        loc = location(r)

    r = put_final(loc, digest_of(data))
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest_of(data), describe(r)

    # an acknowledged blob and an acknowledged manifest survive a crash right after the 201
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": next(iter(image["blobs"])),
                "size": len(next(iter(image["blobs"].values()))),
            },
            "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(data), "size": len(data)}],
        }
    ).encode()
    r = req(
        "PUT",
        f"{reg.url}/v2/{repo}/manifests/after",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201, describe(r)

    restart(reg, signal.SIGKILL)
    sqlite_ok(reg.data_dir)
    assert_blob(reg, repo, digest_of(data), data)
    assert_image(reg, image)
    assert_image(reg, {"repo": repo, "tag": "after", "manifest": manifest, "blobs": {}})
    r = req("GET", f"{reg.url}/v2/{repo}/tags/list")
    assert r.status_code == 200 and sorted(r.json()["tags"]) == ["after", "before"], describe(r)
    found = check_blob_store(reg.data_dir)
    assert digest_of(data) in found
    # the finished upload session is gone
    r = upload_status(loc)
    assert r.status_code == 404, describe(r)


@pytest.mark.slow
def test_kill_9_during_streamed_push(fresh_registry):
    """kill -9 while a 200 MB streamed PATCH is half-way: after a restart the blob is not
    visible, earlier content is intact, the upload either resumes from its acknowledged offset
    or is gone, a new full push of the same content is accepted, and no blob file is corrupt."""
    reg = fresh_registry
    repo = new_repo()
    image = push_image(reg, repo, "v1")
    small = os.urandom(2 * MiB + 17)
    small_digest = push_blob(reg, repo, small)
    content = BigContent(200 * MiB)

    loc, _ = start_upload(reg, repo)
    stop = threading.Event()
    sent = [0]
    outcome: dict[str, object] = {}

    def body() -> Iterator[bytes]:
        for block in content.blocks():
            if stop.is_set():
                return
            sent[0] += len(block)
            yield block

    def run() -> None:
        try:
            outcome["response"] = req(
                "PATCH",
                loc,
                data=body(),
                timeout=120,
                headers={"Content-Type": "application/octet-stream"},
            )
        except requests.RequestException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while uploads_bytes(reg.data_dir) < 48 * MiB:
        assert thread.is_alive(), f"the 200 MB PATCH ended before the kill: {outcome}"
        assert time.monotonic() < deadline, (
            f"the upload did not reach 48 MiB on disk under {reg.data_dir / 'uploads'} "
            f"in 60 s (client sent {sent[0]} bytes)"
        )
        time.sleep(0.02)
    reg.kill()
    killed_at = sent[0]
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    assert "response" not in outcome or outcome["response"].status_code != 202, (
        f"the PATCH was acknowledged although the server was killed: {outcome}"
    )
    assert killed_at < content.size, "the whole body went out before the kill"

    sqlite_ok(reg.data_dir)
    check_blob_store(reg.data_dir)
    reg.start()

    # the half-pushed blob is not visible
    r = req("HEAD", f"{reg.url}/v2/{repo}/blobs/{content.digest}")
    assert r.status_code == 404, describe(r)
    # earlier content is intact
    assert_image(reg, image)
    assert_blob(reg, repo, small_digest, small)

    # the interrupted session is either gone or resumable from what it acknowledges
    r = upload_status(loc)
    assert r.status_code in (204, 404), describe(r)
    if r.status_code == 204:
        _, end = parse_range(r)
        offset = 0 if end == 0 else end + 1  # "0-0" is how an empty session is reported
        assert offset <= killed_at, f"acknowledges more than was sent ({killed_at}): {describe(r)}"
        r = stream_patch(location(r), content, offset)
        assert r.status_code == 202, f"resume from acknowledged offset {offset}: {describe(r)}"
        assert parse_range(r) == (0, content.size - 1), describe(r)
        r = put_final(location(r), content.digest)
        assert r.status_code == 201, f"resumed upload did not commit: {describe(r)}"
        assert r.headers.get("Docker-Content-Digest") == content.digest, describe(r)
        assert_big_blob(reg, repo, content)

    # a new complete push of the same content is accepted
    repo2 = new_repo()
    full_push(reg, repo2, content)
    assert_big_blob(reg, repo2, content)
    r = req("HEAD", f"{reg.url}/v2/{repo2}/blobs/{content.digest}")
    assert r.status_code == 200 and r.headers.get("Content-Length") == str(content.size), describe(
        r
    )
    assert_image(reg, image)

    found = check_blob_store(reg.data_dir)
    for digest in (*image["blobs"], small_digest, content.digest):
        assert digest in found, f"{digest} has no file under {reg.data_dir / 'blobs'}"


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_while_idle_exits_0_promptly(fresh_registry, workers: int):
    reg = fresh_registry
    if workers != 1:
        reg.stop()
        reg.extra_args = [*reg.extra_args, "--workers", str(workers)]  # keeps the backend flags
        reg.start()
    repo = new_repo()
    image = push_image(reg, repo, "v1")

    # an idle keep-alive connection, like the one a client leaves open between requests
    session = requests.Session()
    assert session.get(f"{reg.url}/v2/", timeout=TIMEOUT).status_code == 200

    pid = reg.proc.pid
    group = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    t0 = time.monotonic()
    code = reg.stop(signal.SIGTERM)
    elapsed = time.monotonic() - t0
    session.close()
    log = reg.log_path.read_text()[-3000:]
    assert code == 0, f"exit code {code} after SIGTERM (after {elapsed:.1f}s); log:\n{log}"
    assert elapsed < 5, f"SIGTERM took {elapsed:.1f}s to stop an idle server; log:\n{log}"

    # no worker outlives the server
    deadline = time.monotonic() + 5
    alive = running(group)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = running(alive)
    assert not alive, f"processes of the server still running after it exited: {alive}"

    reg.start()
    assert_image(reg, image)
