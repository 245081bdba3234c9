"""A long streamed PATCH keeps its progress when the server dies: it checkpoints every
MOORAGE_UPLOAD_CHECKPOINT_BYTES (4 MiB here) and on SIGTERM, on SQLite + files and on
PostgreSQL + S3, and a client resumes from the checkpoint the upload status reports."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.backends import services_or_skip
from support.servers import BACKEND, RegistryProcess

# These tests start their own servers on both backends: once, in the default tier, is enough.
pytestmark = pytest.mark.skipif(BACKEND != "fs", reason="runs both backends itself, in the fs tier")

MiB = 1 << 20
CHECKPOINT = 4 * MiB
PART = 8 * MiB  # S3 part size here: a multiple of CHECKPOINT, so part boundaries are checkpoints
SIZE = 40 * MiB
PAUSE_AT = 22 * MiB  # the client stops sending here (not a checkpoint boundary)
LEASE = 10  # seconds; PostgreSQL keeps a dead writer's lease this long
T = 60


class Content:
    """`size` deterministic bytes in 1 MiB blocks (each block starts with its index)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.base = hashlib.sha256(uuid.uuid4().bytes).digest() * (MiB // 32)
        h = hashlib.sha256()
        for block in self.blocks():
            h.update(block)
        self.digest = "sha256:" + h.hexdigest()

    def blocks(self, start: int = 0) -> Iterator[bytes]:
        i, skip = divmod(start, MiB)
        while i * MiB < self.size:
            block = (i.to_bytes(8, "big") + self.base[8:])[: min(MiB, self.size - i * MiB)]
            yield block[skip:]
            skip, i = 0, i + 1


class PausingBody:
    """A PATCH body that stops after `pause_at` bytes until released (or aborted).

    Iterated it is sent chunked (like docker); with `sized`, requests sends Content-Length."""

    def __init__(self, content: Content, pause_at: int, sized: bool) -> None:
        self.content, self.pause_at, self.sized = content, pause_at, sized
        self.sent = 0
        self.paused, self.released = threading.Event(), threading.Event()
        self.aborted = False
        self._it = self._blocks()
        self._buf = b""

    def _blocks(self) -> Iterator[bytes]:
        for block in self.content.blocks():
            if self.sent >= self.pause_at:
                self.paused.set()
                self.released.wait(120)
                if self.aborted:
                    return
            self.sent += len(block)
            yield block

    def abort(self) -> None:
        self.aborted = True
        self.released.set()

    def __iter__(self) -> Iterator[bytes]:
        return self._it

    def __len__(self) -> int:
        return self.content.size

    def read(self, n: int = -1) -> bytes:
        while len(self._buf) < max(n, 1) and (block := next(self._it, None)) is not None:
            self._buf += block
        out, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
        return out


@pytest.fixture(params=["fs", "pg-s3"])
def backend(request: pytest.FixtureRequest):
    """None for SQLite + files; the shared PostgreSQL + SeaweedFS services otherwise."""
    if request.param == "fs":
        return None
    return services_or_skip()


def start_server(tmp_path: Path, services, **env: str) -> RegistryProcess:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    args, backend_env = ([], {}) if services is None else services.node_settings()
    return RegistryProcess(
        data_dir=data, extra_args=["--workers", "1", *args],
        env={**backend_env, "MOORAGE_UPLOAD_CHECKPOINT_BYTES": str(CHECKPOINT),
             "MOORAGE_S3_PART_SIZE": str(PART), "MOORAGE_UPLOAD_LEASE_SECONDS": str(LEASE),
             **env},
    ).start()


def start_upload(reg: RegistryProcess, repo: str) -> str:
    r = requests.post(f"{reg.url}/v2/{repo}/blobs/uploads/", timeout=T)
    assert r.status_code == 202, r.text
    return reg.url + r.headers["Location"]


def offset_of(r: requests.Response) -> int:
    m = re.fullmatch(r"0-(\d+)", r.headers.get("Range", ""))
    assert m, f"{r.status_code} Range={r.headers.get('Range')!r} {r.text[:300]}"
    end = int(m.group(1))
    return 0 if end == 0 else end + 1  # "0-0" is how an empty upload is reported


def status(url: str) -> int:
    r = requests.get(url, timeout=T)
    assert r.status_code == 204, r.text
    return offset_of(r)


def resume(url: str, content: Content, offset: int) -> requests.Response:
    """PATCH the rest of `content` from `offset` (Content-Range and Content-Length)."""
    return requests.patch(
        url, data=b"".join(content.blocks(offset)), timeout=120,
        headers={"Content-Type": "application/octet-stream",
                 "Content-Range": f"{offset}-{content.size - 1}"},
    )


def finish_and_check(reg: RegistryProcess, repo: str, url: str, content: Content) -> None:
    r = requests.put(f"{url}?digest={content.digest}", timeout=120)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == content.digest
    with requests.get(f"{reg.url}/v2/{repo}/blobs/{content.digest}", stream=True,
                      timeout=120) as r:
        assert r.status_code == 200, r.text
        got = b"".join(r.iter_content(4 * MiB))
    assert got == b"".join(content.blocks()), "the resumed blob differs from what was sent"


def patch_in_thread(url: str, body: PausingBody, outcome: dict) -> threading.Thread:
    headers = {"Content-Type": "application/octet-stream"}
    if body.sized:
        headers["Content-Range"] = f"0-{body.content.size - 1}"

    def run() -> None:
        try:
            outcome["response"] = requests.patch(
                url, data=body if body.sized else iter(body), headers=headers, timeout=120
            )
        except requests.RequestException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("sized", [False, True], ids=["chunked", "content-length"])
def test_kill_9_mid_patch_resumes_from_the_last_checkpoint(tmp_path, backend, sized):
    reg = start_server(tmp_path, backend)
    try:
        repo = f"checkpoint/{uuid.uuid4().hex[:10]}"
        content = Content(SIZE)
        url = start_upload(reg, repo)
        body = PausingBody(content, PAUSE_AT, sized)
        outcome: dict = {}
        thread = patch_in_thread(url, body, outcome)
        assert body.paused.wait(T), f"the client never reached {PAUSE_AT} bytes: {outcome}"

        # While the PATCH is still open, the status already reports its checkpoints.
        deadline = time.monotonic() + T
        seen, before_seen = 0, time.monotonic()
        while seen < 16 * MiB:
            assert time.monotonic() < deadline, f"no checkpoint past 16 MiB, status at {seen}"
            before_seen = time.monotonic()
            seen = status(url)
            time.sleep(0.1)
        time.sleep(0.5)
        seen = status(url)
        reg.kill()
        body.abort()
        thread.join(T)
        assert "response" not in outcome or outcome["response"].status_code != 202, outcome

        reg.start()
        offset = status(url)
        assert offset % CHECKPOINT == 0, f"{offset} is not at a checkpoint boundary"
        assert seen <= offset <= PAUSE_AT, f"status {offset}, {seen} seen before the kill"

        r = resume(url, content, offset)
        if backend is not None and time.monotonic() - before_seen < LEASE - 2:
            # PostgreSQL still holds the dead writer's lease: a clear, retryable refusal that
            # leaves the checkpoint alone.
            assert r.status_code == 416, r.text
            assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID", r.text
            assert offset_of(r) == offset
        deadline = time.monotonic() + LEASE + T
        while r.status_code == 416 and time.monotonic() < deadline:
            time.sleep(1)
            r = resume(url, content, offset)
        assert r.status_code == 202, r.text
        assert offset_of(r) == SIZE
        finish_and_check(reg, repo, url, content)
    finally:
        reg.stop()


def test_sigterm_mid_patch_checkpoints_what_arrived_and_answers_503(tmp_path, backend):
    reg = start_server(tmp_path, backend, MOORAGE_SHUTDOWN_TIMEOUT="20")
    try:
        repo = f"checkpoint/{uuid.uuid4().hex[:10]}"
        content = Content(SIZE)
        url = start_upload(reg, repo)
        path = url[len(reg.url):]
        # A raw chunked PATCH (like docker's) that stops sending mid-body and waits.
        sock = socket.create_connection(("127.0.0.1", reg.port), timeout=T)
        sock.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: {reg.host}\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        for i, block in enumerate(content.blocks()):
            if i * MiB >= PAUSE_AT:
                break
            sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
        time.sleep(2)  # let the server read what was sent

        t0 = time.monotonic()
        code = reg.stop(signal.SIGTERM)
        elapsed = time.monotonic() - t0
        assert code == 0, f"exit code {code}: {reg.log_path.read_text()[-3000:]}"
        # It did not wait out the 20 s shutdown timeout for a client that sends nothing.
        assert elapsed < 10, f"SIGTERM took {elapsed:.1f}s with a paused PATCH in flight"

        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
        sock.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 503 "), raw[:500]
        headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
        assert headers.get("location") == path
        answered = re.fullmatch(r"0-(\d+)", headers.get("range", ""))
        assert answered, raw[:500]
        assert b"UNAVAILABLE" in payload, raw[:500]

        reg.start()
        offset = status(url)
        # Past the last periodic checkpoint (20 MiB): the shutdown saved what had arrived.
        assert 20 * MiB < offset <= PAUSE_AT, f"status {offset}"
        assert int(answered.group(1)) + 1 == offset, "the 503 named another offset"
        r = resume(url, content, offset)
        assert r.status_code == 202, r.text
        finish_and_check(reg, repo, url, content)
    finally:
        reg.stop()


def test_sigterm_mid_sized_patch_answers_a_json_503_with_the_range(tmp_path):
    """The 503 of an interrupted PATCH is the registry's usual JSON error body."""
    reg = start_server(tmp_path, None)
    try:
        url = start_upload(reg, f"checkpoint/{uuid.uuid4().hex[:10]}")
        path = url[len(reg.url):]
        sock = socket.create_connection(("127.0.0.1", reg.port), timeout=T)
        sock.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: {reg.host}\r\nContent-Length: {SIZE}\r\n"
            f"Content-Range: 0-{SIZE - 1}\r\n\r\n".encode() + b"x" * 1000
        )
        time.sleep(1)
        assert reg.stop(signal.SIGTERM) == 0
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
        sock.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), raw[:500]
        body = json.loads(payload)
        assert body["errors"][0]["code"] == "UNAVAILABLE"
        assert b"\r\nRange: 0-999\r\n" in head + b"\r\n", head
        reg.start()
        assert status(url) == 1000
    finally:
        reg.stop()
