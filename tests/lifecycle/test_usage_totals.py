"""Namespace usage kept as totals: after a mixed workload over HTTP the stored totals and
reference counts equal a full recount (SQLite and PostgreSQL), the migration's backfill and the
repair command agree with it, and the cost of a quota-checked push does not grow with the
namespace."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import event, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from support.http import add_query, describe, http, resolve
from support.oci import (
    Blob,
    assert_error,
    make_artifact,
    make_image,
    make_index,
    manifest_url,
    push_blob,
    push_manifest,
    push_tree,
    put_manifest,
    tar_layer,
    uploads_url,
)

from moorage.bootstrap import Registry
from moorage.config import Settings
from moorage.metadata.engine import make_engine, sqlite_url
from moorage.metadata.migrate import _config, upgrade
from moorage.metadata.queries import recount
from moorage.metadata.schema import (
    blobs,
    manifest_references,
    manifests,
    namespace_usage,
    repositories,
    repository_blobs,
    tags,
)
from moorage.metadata.uow import Database

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _ns() -> str:
    return "ns" + uuid.uuid4().hex[:10]


def _size(image) -> int:  # type: ignore[no-untyped-def]
    return len(image.body) + sum(len(b.data) for b in image.blobs)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, make_registry):  # type: ignore[no-untyped-def]
    """(server, cli, database URL, extra CLI args) on the embedded database or PostgreSQL."""
    common = {"MOORAGE_TAG_RESTORE_WINDOW": "0"}
    if request.param == "sqlite":
        reg, cli = make_registry("--allow-sparse", **common)
        return reg, cli, sqlite_url(reg.data_dir), []
    from support.backends import migrate, services_or_skip

    url = services_or_skip().pg.create_database()
    migrate(url)
    reg, cli = make_registry("--allow-sparse", "--database", url, **common)
    return reg, cli, url, ["--database", url]


def _assert_totals_match_recount(url: str, namespaces: list[str]) -> dict[str, int]:
    """Stored totals == the aggregate over manifests, per namespace; reference counts exact."""
    engine = make_engine(url)
    try:
        with Database(engine).read() as uow:
            stored = {ns: uow.usage.total(ns) for ns in namespaces}
            recounted = {ns: uow.usage.recount(ns) for ns in namespaces}
        assert stored == recounted
        with engine.connect() as conn:
            assert recount.stored_content(conn) == recount.expected_content(conn)
            assert recount.stored_totals(conn) == recount.totals_of(recount.stored_content(conn))
        return stored
    finally:
        engine.dispose()


def test_usage_totals_equal_a_full_recount_after_a_mixed_workload(backend):
    reg, cli, url, db = backend
    a, b = _ns(), _ns()
    cli.run("quota", "set", a, "1000000000", *db)  # the quota path is the one exercised
    base = Blob(tar_layer(), OCI_LAYER)
    images = [make_image(layer_blobs=[base, Blob(tar_layer(), OCI_LAYER)]) for _ in range(4)]

    # pushes sharing a layer across repositories of one namespace and across namespaces
    push_tree(reg, f"{a}/app", images[0], tag="v0")
    push_tree(reg, f"{a}/app", images[1], tag="v1")
    push_tree(reg, f"{a}/tools/cli", images[0], tag="same")  # same manifest, second repository
    push_tree(reg, f"{a}/tools/cli", images[2], tag="v2")
    push_tree(reg, f"{b}/x", images[0], tag="v0")
    push_tree(reg, a, images[3], tag="top")  # the namespace's own repository
    index = make_index([images[0], images[1]])
    push_tree(reg, f"{a}/app", index, tag="multi")
    signature = make_artifact(subject=images[0])
    push_tree(reg, f"{a}/app", signature)
    untagged = make_image(layer_blobs=[base])
    push_tree(reg, f"{a}/app", untagged)  # only by digest: GC takes it at grace 0
    stored = _assert_totals_match_recount(url, [a, b])
    distinct = {base.digest: len(base.data)}
    for m in (*images, index, signature, untagged):
        distinct[m.digest] = len(m.body)
        distinct.update({x.digest: len(x.data) for x in m.blobs})
    assert stored[a] == sum(distinct.values())
    assert stored[b] == _size(images[0])

    # concurrent pushes of images sharing the base layer into several repositories
    def push(i: int) -> None:
        image = make_image(layer_blobs=[base, Blob(tar_layer(), OCI_LAYER)])
        push_tree(reg, f"{a}/c{i % 3}", image, tag=f"t{i}")
        push_tree(reg, f"{b}/c{i % 2}", images[1], tag=f"t{i}")

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(push, range(12)))
    _assert_totals_match_recount(url, [a, b])

    # a sparse push: the layer is referenced before its bytes exist, then uploaded
    late = Blob(tar_layer(), OCI_LAYER)
    sparse = make_image(layer_blobs=[late])
    for blob in sparse.blobs[:1]:  # the config only
        push_blob(reg, f"{a}/sparse", blob.data)
    push_manifest(reg, f"{a}/sparse", sparse.body, sparse.media_type, ref="v1")
    before = _assert_totals_match_recount(url, [a, b])[a]
    push_blob(reg, f"{b}/other", late.data)  # recorded through another namespace
    assert _assert_totals_match_recount(url, [a, b])[a] == before + len(late.data)

    # manifest deletes, tag deletes, retention, GC at grace 0
    assert http.delete(manifest_url(reg, f"{a}/app", images[1].digest)).status_code == 202
    assert http.delete(manifest_url(reg, f"{a}/tools/cli", "v2")).status_code == 202
    assert http.delete(manifest_url(reg, f"{b}/x", "v0")).status_code == 202
    _assert_totals_match_recount(url, [a, b])
    cli.run("retention", "set", b, "--keep-last-pushed", "1", *db)
    cli.run("retention", "apply", b, *db)
    _assert_totals_match_recount(url, [a, b])
    report = cli.gc("0", *db)
    assert report["manifests"] > 0, report
    _assert_totals_match_recount(url, [a, b])

    # pushes after GC re-count content whose rows went to zero
    push_tree(reg, f"{a}/app", images[1], tag="back")
    push_tree(reg, f"{b}/x", images[0], tag="back")
    final = _assert_totals_match_recount(url, [a, b])
    check = cli.json("quota", "recount", "--check", *db)
    assert check == {"applied": False, "namespaces": {}}, check

    # the migration's backfill recounts the same figures from existing data
    reg.stop()
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            config = _config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        upgrade(engine)
    finally:
        engine.dispose()
    assert _assert_totals_match_recount(url, [a, b]) == final


def test_quota_recount_repairs_wrong_totals(make_registry):
    reg, cli = make_registry()
    ns = _ns()
    image = make_image(2)
    push_tree(reg, f"{ns}/r", image, tag="v1")
    cli.run("quota", "set", ns, str(_size(image) + 10))
    engine = make_engine(sqlite_url(reg.data_dir))
    try:
        with engine.begin() as conn:  # a drifted total, as a bug or a manual edit would leave
            conn.execute(update(namespace_usage).where(namespace_usage.c.namespace == ns)
                         .values(bytes=5))
        proc = cli.run("quota", "recount", "--check", "--json", check=False)
        assert proc.returncode == 1, proc.stdout
        assert f'"{ns}": {{"stored": 5, "recounted": {_size(image)}}}' in proc.stdout
        # with the drifted figure the quota would let another image in; repaired, it refuses
        cli.run("quota", "recount")
        with Database(engine).read() as uow:
            assert uow.usage.total(ns) == _size(image)
        other = make_image(1)
        for blob in other.blobs:  # chunked, no declared size: only the manifest PUT checks
            loc = resolve(http.post(uploads_url(reg, f"{ns}/r")))
            r = http.put(add_query(loc, {"digest": blob.digest}), data=iter([blob.data]))
            assert r.status_code == 201, describe(r)
        r = put_manifest(reg, f"{ns}/r", "v2", other.body, other.media_type)
        assert_error(r, 403, "DENIED")
        assert f"({_size(image)} bytes)" in r.text, r.text
    finally:
        engine.dispose()


# -- the cost of a push does not grow with the namespace ------------------------------------------


class _Work:
    """Counts SQL statements and the SQLite VM instructions they run while armed."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.armed = False
        self.statements: list[str] = []
        self.steps = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "checkout", self._checkout)

    def _statement(self, conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if self.armed:
            self.statements.append(statement.split()[0])

    def _step(self) -> int:
        if self.armed:
            self.steps += 1
        return 0

    def _checkout(self, dbapi_conn, record, proxy):  # type: ignore[no-untyped-def]
        dbapi_conn.set_progress_handler(self._step, 1)


def _fill(engine, ns: str, count: int, config: Blob) -> None:  # type: ignore[no-untyped-def]
    """`count` manifests in five repositories of `ns`, written in bulk (setup, not measured);
    the usage rows are then built by the repair path."""
    now = time.time()
    with engine.begin() as conn:
        repo_ids = [
            conn.execute(repositories.insert().values(name=f"{ns}/r{i}", created_at=now)
                         .returning(repositories.c.id)).scalar_one()
            for i in range(5)
        ]
        conn.execute(sqlite_insert(blobs).on_conflict_do_nothing(), [
            {"digest": config.digest, "size": len(config.data), "storage_key": "k",
             "created_at": now}])
        layer_rows, link_rows, manifest_rows, ref_rows, tag_rows = [], [], [], [], []
        for i in range(count):
            layer = Blob(uuid.uuid4().bytes * 8, OCI_LAYER)
            image = make_image(config=config, layer_blobs=[layer])
            repo_id = repo_ids[i % 5]
            layer_rows.append({"digest": layer.digest, "size": len(layer.data),
                               "storage_key": "k/" + layer.digest, "created_at": now})
            link_rows.append({"repository_id": repo_id, "digest": layer.digest,
                              "created_at": now})
            manifest_rows.append({"repository_id": repo_id, "digest": image.digest,
                                  "media_type": image.media_type, "size": len(image.body),
                                  "content": image.body, "created_at": now})
            tag_rows.append({"repository_id": repo_id, "name": f"t{i}",
                             "manifest_digest": image.digest, "updated_at": now})
            ref_rows.append((image.digest, [config.digest, layer.digest]))
        conn.execute(blobs.insert(), layer_rows)
        conn.execute(repository_blobs.insert(), link_rows)
        conn.execute(repository_blobs.insert(), [
            {"repository_id": r, "digest": config.digest, "created_at": now} for r in repo_ids])
        conn.execute(manifests.insert(), manifest_rows)
        conn.execute(tags.insert(), tag_rows)
        ids = dict(conn.execute(select(manifests.c.digest, manifests.c.id).where(
            manifests.c.repository_id.in_(repo_ids))).all())
        conn.execute(manifest_references.insert(), [
            {"manifest_id": ids[m], "digest": d, "kind": "blob"} for m, ds in ref_rows for d in ds])
    with Database(engine).write() as uow:
        uow.usage.repair(apply=True)


def _measured_push(registry: Registry, work: _Work, ns: str, config: Blob
                   ) -> tuple[list[str], int]:
    layer = Blob(uuid.uuid4().bytes * 8, OCI_LAYER)
    for blob in (config, layer):
        with registry.database.write() as uow:
            uow.blobs.commit(f"{ns}/r0", None, blob.digest, len(blob.data), "k/" + blob.digest,
                             reused=False)
    image = make_image(config=config, layer_blobs=[layer])
    work.statements, work.steps, work.armed = [], 0, True
    try:
        asyncio.run(registry.manifests.push(f"{ns}/r0", "measured", image.body, image.media_type, []))
    finally:
        work.armed = False
    return work.statements, work.steps


def test_push_cost_with_a_quota_does_not_grow_with_the_namespace(tmp_path: Path):
    settings = Settings.from_env(env={}, data_dir=tmp_path, gc_interval=0.0)
    engine = make_engine(sqlite_url(tmp_path))
    upgrade(engine)
    registry = Registry(settings, engine)
    work = _Work(engine)
    small, large = "small" + uuid.uuid4().hex[:6], "large" + uuid.uuid4().hex[:6]
    config = Blob(b'{"architecture":"amd64","os":"linux"}', "application/vnd.oci.image.config.v1+json")
    for ns in (small, large):
        with registry.database.write() as uow:
            uow.policies.set_quota(ns, 10**12, None)
    started = time.monotonic()
    _fill(engine, small, 10, config)
    _fill(engine, large, 2000, config)
    fill_seconds = time.monotonic() - started
    with engine.connect() as conn:
        assert recount.stored_totals(conn)[large] > 150 * recount.stored_totals(conn)[small]
    try:
        small_sql, small_steps = _measured_push(registry, work, small, config)
        large_sql, large_steps = _measured_push(registry, work, large, config)
    finally:
        engine.dispose()
    # Same statements, and the same work inside them (B-tree seeks are one VM instruction
    # whatever the table size; an aggregate over the namespace grows with it).
    assert small_sql == large_sql
    assert "INSERT" in small_sql  # the measurement saw the push's writes
    assert 0 < large_steps <= small_steps * 1.05, (small_steps, large_steps, fill_seconds)
