"""One suite the metadata layer passes on both engines: SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from moorage.auth.service import AuthService
from moorage.metadata.engine import make_engine, sqlite_url
from moorage.metadata.migrate import (
    BASELINE_REVISION,
    SchemaNotCurrent,
    check_current,
    current_revision,
    head_revision,
    upgrade,
)
from moorage.metadata.rows import NewManifest, UploadBusy
from moorage.metadata.schema import manifests, metadata, uploads
from moorage.metadata.uow import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path: Path) -> str:
    """The URL of a new, empty database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    from support.backends import services_or_skip

    return services_or_skip().pg.create_database()


@pytest.fixture
def engine(empty_url: str):
    engine = make_engine(empty_url, pool_size=8)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine) -> Database:
    return Database(engine)


def _parallel(fn, count: int) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 (collected, asserted by the caller)
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# -- migrations ------------------------------------------------------------------------------------


def test_unmigrated_database_is_refused_with_a_clear_message(empty_url):
    engine = make_engine(empty_url)
    try:
        with pytest.raises(SchemaNotCurrent, match="moorage db upgrade"):
            check_current(engine)
        upgrade(engine)
        check_current(engine)
        assert upgrade(engine)[0] == head_revision()  # idempotent
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_schema_the_code_declares(empty_url):
    # Replayed one by one, as an existing database is upgraded (a new one is created from the
    # declared schema at once, so this is what makes the two the same).
    engine = make_engine(empty_url)
    try:
        upgrade(engine, replay=True)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        engine.dispose()


LEGACY_TABLES = {
    "repositories", "blobs", "repository_blobs", "manifests", "manifest_references", "tags",
    "uploads", "users", "namespaces", "namespace_members", "robots", "robot_permissions",
    "secrets", "login_failures", "audit_events",
}


def test_legacy_embedded_database_is_adopted_not_recreated(tmp_path: Path):
    engine = make_engine(sqlite_url(tmp_path))
    try:
        # What the server made before migrations: the tables of revision 0001 (as 0001 builds
        # them; later revisions alter some), and no version table.
        upgrade(engine, BASELINE_REVISION, replay=True)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
        assert set(inspect(engine).get_table_names()) == LEGACY_TABLES
        with Database(engine).write() as uow:
            uow.uploads.create("u", "legacy/repo", "sha256", b"s", "1", "h")
        upgrade(engine)
        check_current(engine)
        assert _count(engine, uploads) == 1
    finally:
        engine.dispose()


# -- uploads -----------------------------------------------------------------------------------------


def _create_upload(db: Database, upload_id: str, repository: str, handle: str) -> None:
    with db.write() as uow:
        uow.uploads.create(upload_id, repository, "sha256", b"state0", "v1", handle)


def _get_upload(db: Database, repository: str, upload_id: str):  # type: ignore[no-untyped-def]
    with db.read() as uow:
        return uow.uploads.get(repository, upload_id)


def _claim(db: Database, upload_id: str, token: str):  # type: ignore[no-untyped-def]
    with db.write() as uow:
        return uow.uploads.claim("lib/a", upload_id, token, 30)


def test_upload_lease_and_progress(db: Database):
    _create_upload(db, "u1", "lib/a", "handle0")
    row = _claim(db, "u1", "tok")
    assert row is not None and row.offset == 0 and row.storage_handle == "handle0"
    with pytest.raises(UploadBusy):
        _claim(db, "u1", "other")
    with db.write() as uow:
        assert uow.uploads.renew("u1", "tok", 30)
        assert not uow.uploads.save_progress("u1", "other", 5, b"x")
        assert uow.uploads.save_progress("u1", "tok", 10, b"state1", "handle1")
    row = _get_upload(db, "lib/a", "u1")
    assert (row.offset, row.hash_state, row.storage_handle, row.writer_token) == (
        10, b"state1", "handle1", None)
    assert _get_upload(db, "lib/other", "u1") is None


def test_concurrent_claims_of_one_upload_have_one_winner(db: Database):
    _create_upload(db, "u2", "lib/a", "h")
    results = _parallel(lambda i: _claim(db, "u2", f"tok{i}"), 6)
    winners = [r for r in results if r is not None and not isinstance(r, Exception)]
    assert len(winners) == 1, results
    assert all(isinstance(r, UploadBusy) for r in results if r not in winners)


def test_stale_uploads_are_found_and_expired_once(db: Database, engine):
    _create_upload(db, "old", "lib/a", "h-old")
    _create_upload(db, "new", "lib/a", "h-new")
    later = time.time() + 1
    with db.read() as uow:
        assert {u for u, _, _ in uow.gc.stale_uploads(later, time.time(), 10)} == {"old", "new"}
        assert uow.gc.stale_uploads(time.time() - 3600, time.time(), 10) == []
    with db.write() as uow:
        assert [r[0] for r in uow.gc.expire_uploads(["old"], later)] == ["old"]
    with db.write() as uow:
        assert uow.gc.expire_uploads(["old"], later) == []  # only once
    assert _get_upload(db, "lib/a", "old") is None
    assert _get_upload(db, "lib/a", "new") is not None


# -- blobs, manifests, tags ----------------------------------------------------------------------


def test_concurrent_commits_of_one_digest_record_one_blob(db: Database):
    digest = "sha256:" + uuid.uuid4().hex * 2

    def commit(i: int) -> str:
        with db.write() as uow:
            return uow.blobs.commit(f"lib/r{i % 3}", None, digest, 10, f"blobs/key-{i}",
                                    reused=False)

    keys = _parallel(commit, 8)
    assert not [k for k in keys if isinstance(k, Exception)], keys
    assert len(set(keys)) == 1  # everyone learns the one key that was recorded
    with db.read() as uow:
        assert uow.blobs.find(digest).storage_key == keys[0]
        for i in range(3):
            assert uow.blobs.repository_blob(f"lib/r{i}", digest) is not None


def _manifest(i: int) -> NewManifest:
    content = f'{{"schemaVersion":2,"n":{i}}}'.encode()
    return NewManifest(
        digest=f"sha256:{i:064x}", media_type="application/vnd.oci.image.manifest.v1+json",
        content=content, artifact_type=None, subject_digest=None, annotations=None,
        blob_digests=(), child_digests=(),
    )


def _put(db: Database, repository: str, manifest: NewManifest, tag_names: list[str]) -> None:
    """What a push writes, without its checks."""
    with db.write() as uow:
        repo_id = uow.repositories.ensure(repository)
        uow.repositories.lock(repo_id, exclusive=False)
        uow.manifests.put(repo_id, repository, manifest)
        uow.tags.move(repo_id, tag_names, manifest.digest)


def _tags(db: Database, repository: str, last: str | None = None, limit: int = 100
          ) -> list[str] | None:
    with db.read() as uow:
        return uow.tags.list(repository, last, limit)


def _count(engine, table) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_concurrent_pushes_of_one_tag_leave_one_consistent_row(db: Database, engine):
    results = _parallel(lambda i: _put(db, "lib/tagged", _manifest(i), ["latest"]), 8)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert _tags(db, "lib/tagged") == ["latest"]
    with db.read() as uow:
        row = uow.manifests.get("lib/tagged", None, "latest", True)
    assert row is not None and row.digest in {_manifest(i).digest for i in range(8)}
    assert _count(engine, manifests) == 8


def test_concurrent_pushes_of_one_manifest_store_it_once(db: Database, engine):
    results = _parallel(lambda i: _put(db, "lib/same", _manifest(42), [f"t{i}"]), 6)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert _count(engine, manifests) == 1
    assert len(_tags(db, "lib/same") or []) == 6


def test_listings_are_in_byte_order_and_page(db: Database):
    names = ["B", "a", "a-b", "a.b", "a_b", "ab", "Z9"]
    for n in names:
        _put(db, "lib/order", _manifest(len(n)), [n])
    assert _tags(db, "lib/order") == sorted(names)
    assert _tags(db, "lib/order", "a", 2) == sorted(names)[3:5]
    assert _tags(db, "lib/order", "a\x00zzz") == sorted(names)[3:]
    with db.read() as uow:
        repos = uow.repositories.catalog(None, 100)
    assert repos == sorted(repos)


# -- shared secrets -----------------------------------------------------------------------------


def test_every_node_gets_the_same_signing_key(engine):
    services = [AuthService(Database(engine)) for _ in range(6)]
    values = _parallel(lambda i: services[i].shared_secret("token-key", lambda: bytes([i]) * 32), 6)
    assert not [v for v in values if isinstance(v, Exception)], values
    assert len(set(values)) == 1


# -- login throttling ---------------------------------------------------------------------------


def test_concurrent_login_failures_are_all_counted(engine):
    """Each failure is one upsert: failures racing on several connections all count, and the
    lockout is computed from the counts they saw."""
    db = Database(engine)
    seen: list[tuple[int, int]] = []

    def lockout(pair: int, address: int) -> float:
        seen.append((pair, address))
        return 60.0 if pair >= 8 else 0.0

    results = _parallel(
        lambda i: _failure(db, "pair:a|u", "addr:a", 3600, 300, lockout), 8
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(seen) == [(n, n) for n in range(1, 9)]
    with db.read() as uow:
        until, failures = uow.access.login_lock("pair:a|u")
    assert failures == 8 and until > time.time() + 50
    assert max(results) == until
    with db.write() as uow:
        uow.access.clear_failures(["pair:a|u"])
    with db.read() as uow:
        assert uow.access.login_lock("pair:a|u") == (0.0, 0)


def _failure(db: Database, *args):  # type: ignore[no-untyped-def]
    with db.write() as uow:
        return uow.access.record_login_failure(*args)


def test_login_failure_counters_restart_when_stale(engine):
    db = Database(engine)
    seen: list[tuple[int, int]] = []

    def lockout(pair: int, address: int) -> float:
        seen.append((pair, address))
        return 0.0

    for _ in range(3):
        _failure(db, "pair:b|u", "addr:b", 3600, 300, lockout)
    # a pair forgotten after no failure for `forget_after`, an address after its window
    _failure(db, "pair:b|u", "addr:b", 0, 300, lockout)
    _failure(db, "pair:b|u", "addr:b", 3600, 0, lockout)
    assert seen == [(1, 1), (2, 2), (3, 3), (1, 4), (2, 1)]


def test_hostile_text_in_events_is_stored_and_audited_on_both_engines(engine):
    """A NUL (PostgreSQL refuses it), a lone surrogate (UTF-8 cannot hold it) or an overlong
    value in an actor, tag or reference never blocks the outbox or the audit consumer."""
    from moorage.events.audit import AuditLog
    from moorage.events.types import AccessDenied, Actor, WriteRefused

    audit = AuditLog(Database(engine))
    hostile = "bad\x00name\udc80" + "x" * 500
    audit.outbox.emit(
        AccessDenied(actor=Actor(hostile, None, "10.0.0.1"), repository="ns/app",
                     action="push", detail={"reason": hostile}),
        WriteRefused(actor=Actor("alice", "user", "10.0.0.1"), repository="ns/app",
                     action="manifest.push", reference=hostile, tag=hostile,
                     detail={"code": "TAG_INVALID", "reason": hostile}),
    )
    rows = {r["action"]: r for r in audit.query(repository="ns/app", limit=10)}
    denied, refused = rows["access.push"], rows["manifest.push"]
    assert denied["actor"].startswith("bad\ufffdname") and len(denied["actor"]) == 160, denied
    assert refused["reference"].startswith("bad\ufffdname") and len(refused["reference"]) == 200
    assert refused["outcome"] == "failure" and denied["outcome"] == "denied"
