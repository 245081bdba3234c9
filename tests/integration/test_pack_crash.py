"""A chunking job killed between writing its pack and recording its chunks (SIGKILL of the
server at that point, `MOORAGE_TEST_PAUSE_AT`): the pack's intent survives the crash, a GC
while the job still runs keeps the young pack, `moorage check` names it once it is old, and a GC
past the upload TTL deletes it; the rerun job chunks the blob again and every blob pulls
byte-identical. Runs on fs and pg-s3 (one node: the crash point is one process's)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.http import describe, http
from support.oci import Blob, blob_url, make_artifact, push_blob, push_manifest
from support.servers import (
    BACKEND,
    RegistryProcess,
    cli_target,
    open_registry_of,
    run_moorage,
    start_registry,
)
from support.weights import safetensors

pytestmark = pytest.mark.skipif(BACKEND == "pg-s3-lb", reason="one node's crash point")
SIZE = 8 << 20
TENSOR = 256 << 10  # 32 tensors: the fine-tune changes 2
WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
POINT = "chunks.pack_written"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def push_model(reg: RegistryProcess, repo: str, data: bytes) -> None:
    artifact = make_artifact("application/vnd.cncf.model.manifest.v1+json",
                             layers=[Blob(data, WEIGHT)])
    for blob in artifact.blobs:
        push_blob(reg, repo, blob.data)
    push_manifest(reg, repo, artifact.body, artifact.media_type, "v1")


def moorage(reg: RegistryProcess, *args: str) -> tuple[int, dict]:
    target, env = cli_target(reg)
    done = run_moorage(*args, "--json", *target, env=env, check=False, timeout=300)
    assert done.returncode in (0, 1), (done.stdout[-2000:], done.stderr[-2000:])
    return done.returncode, json.loads(done.stdout)


def test_a_pack_orphaned_by_a_crash_is_found_and_freed(tmp_path: Path) -> None:
    marker = tmp_path / "paused"
    reg = start_registry(tmp_path, "--workers", "1", MOORAGE_CHUNK_DEDUP="1",
                         MOORAGE_CHUNK_MIN_BLOB_SIZE=str(1 << 20), MOORAGE_JOB_LEASE_SECONDS="6",
                         MOORAGE_TEST_PAUSE_AT=f"{POINT}:{marker}")
    assert isinstance(reg, RegistryProcess)
    registry = open_registry_of(reg)
    base = safetensors(SIZE, tensor_bytes=TENSOR)
    tuned = safetensors(SIZE, version=1, tensor_bytes=TENSOR)

    def recorded(data: bytes) -> bool:
        with registry.database.read() as uow:
            return uow.chunks.has_recipe(sha(data))

    def intents() -> list[str]:
        with registry.database.read() as uow:
            return [k for k, _, _ in uow.chunks.abandoned_packs(float("inf"), 100)]

    try:
        push_model(reg, "crash/base", base)
        wait_for(lambda: recorded(base), "the base to be recorded whole (it shares nothing)")
        push_model(reg, "crash/tuned", tuned)  # shares ~94 %: its job writes a pack
        wait_for(marker.exists, "the chunking job to pause after writing its pack")
        [pack] = intents()
        assert registry.blob_store.blob_size(pack) is not None  # the bytes are stored

        # A job still running: its young intent keeps the pack from a GC.
        _, report = moorage(reg, "gc", "--grace-period", "1h", "--upload-ttl", "1h")
        assert report["packs_abandoned"] == 0 and not report["errors"], report
        assert intents() == [pack] and registry.blob_store.blob_size(pack) is not None

        reg.kill()  # the crash: between the pack's write and the transaction recording it
        assert not recorded(tuned)
        reg.env.pop("MOORAGE_TEST_PAUSE_AT")
        reg.start()
        # The lease of the killed job runs out and the job runs again (a new pack).
        wait_for(lambda: recorded(tuned), "the rerun job to chunk the fine-tune")
        assert intents() == [pack]

        code, found = moorage(reg, "check", "--grace", "0")
        assert code == 1
        assert [(f["kind"], f["key"]) for f in found["findings"]] == [("pack", pack)], found

        _, report = moorage(reg, "gc", "--grace-period", "1h", "--upload-ttl", "0s")
        assert report["packs_abandoned"] == 1 and not report["errors"], report
        assert registry.blob_store.blob_size(pack) is None
        assert intents() == []
        code, found = moorage(reg, "check", "--grace", "0")
        assert (code, found["findings"]) == (0, [])

        for repo, data in (("crash/base", base), ("crash/tuned", tuned)):
            r = http.get(blob_url(reg, repo, sha(data)))
            assert r.status_code == 200, describe(r)
            assert sha(r.content) == sha(data)
        with registry.database.read() as uow:
            row = uow.blobs.find(sha(tuned))
        assert row is not None and row.storage_key.startswith("chunked:")
    finally:
        registry.close()
        reg.stop()
