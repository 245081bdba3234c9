"""`moorage check`: a deleted blob object and an added orphan are found by name, exit 1;
`--repair` removes the orphan and the row of the unreferenced missing blob; the rerun exits 0.
A missing blob a manifest uses is reported with that manifest and left for a restore.
(Runs on every backend: files in the data dir, or PostgreSQL + S3.)"""

from __future__ import annotations

import json
import uuid

from support.oci import digest_of, push_blob, push_image, random_bytes
from support.servers import cli_target, open_registry_of, run_moorage, start_registry


def _check(server, *args: str):  # type: ignore[no-untyped-def]
    target, env = cli_target(server)
    return run_moorage("check", "--json", "--grace", "0", *args, *target, env=env, check=False)


def _findings(proc) -> set[tuple[str, str | None, str | None]]:  # type: ignore[no-untyped-def]
    report = json.loads(proc.stdout)
    return {(f["kind"], f["digest"], f["key"]) for f in report["findings"]}


def _key_of(registry, digest: str) -> str:  # type: ignore[no-untyped-def]
    with registry.database.read() as uow:
        row = uow.integrity.blob(digest)
    assert row is not None, digest
    return row[2]


def _orphan(registry) -> str:  # type: ignore[no-untyped-def]
    """Bytes written to the store as an upload commits them, with no row (a crash's leftover)."""
    store, data = registry.blob_store, random_bytes(4096)
    writer = store.open_upload(store.create_upload(uuid.uuid4().hex), 0, len(data))
    writer.write(data)
    handle = writer.checkpoint()
    writer.close()
    return store.commit_upload(handle, digest_of(data))


def test_check_finds_the_missing_blob_and_the_orphan_and_repair_fixes_them(tmp_path):
    server = start_registry(tmp_path)
    registry = open_registry_of(server)
    try:
        push_image(server, "check/app", "v1")
        lone = push_blob(server, "check/app", random_bytes(10_000))
        assert _check(server).returncode == 0

        lone_key = _key_of(registry, lone)
        registry.blob_store.delete_blob(lone_key)
        orphan = _orphan(registry)

        found = _check(server)
        assert found.returncode == 1, found.stderr
        assert _findings(found) == {("missing", lone, lone_key), ("orphan", None, orphan)}

        repaired = _check(server, "--repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert all(f["repaired"] for f in json.loads(repaired.stdout)["findings"])
        assert registry.blob_store.blob_size(orphan) is None
        with registry.database.read() as uow:
            assert uow.integrity.blob(lone) is None

        again = _check(server)
        assert again.returncode == 0 and _findings(again) == set(), again.stdout
    finally:
        registry.close()
        server.stop()


def test_a_missing_blob_a_manifest_uses_is_named_with_it_and_not_dropped(tmp_path):
    server = start_registry(tmp_path)
    registry = open_registry_of(server)
    try:
        manifest, blobs = push_image(server, "check/used", "v1")
        layer = max(blobs, key=lambda d: len(blobs[d]) if d != manifest else 0)
        registry.blob_store.delete_blob(_key_of(registry, layer))

        repaired = _check(server, "--repair")
        assert repaired.returncode == 1
        [finding] = json.loads(repaired.stdout)["findings"]
        assert (finding["kind"], finding["digest"], finding["repaired"]) == ("missing", layer, None)
        assert f"check/used@{manifest}" in finding["detail"]
        with registry.database.read() as uow:
            assert uow.integrity.blob(layer) is not None

        text = run_moorage("check", "--grace", "0", *cli_target(server)[0],
                           env=cli_target(server)[1], check=False)
        assert text.returncode == 1 and layer in text.stdout
    finally:
        registry.close()
        server.stop()
