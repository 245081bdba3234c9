"""Hot-path statements on SQLite's driver cursor (metadata/base.py `Prebuilt`) and the read
connection a thread keeps: same results as SQLAlchemy's path, same transaction, same errors,
and never a stale answer."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from moorage.bootstrap import Registry
from moorage.metadata.queries import usage
from moorage.oci.digest import parse_digest
from moorage.oci.errors import ManifestUnknown

from .content import digest_of, push, pushed_image


def test_in_lists_of_every_length_give_what_the_plain_path_gives(registry: Registry) -> None:
    rows = [{"namespace": "ns", "kind": "blob", "digest": f"sha256:{i}", "size": i, "refs": 1}
            for i in range(6)]
    with registry.database.write() as uow:
        usage._ADD_CONTENT.run(uow.conn, rows)
        for length in range(7):
            params = {"in_namespace": "ns",
                      "digests": [f"sha256:{i}" for i in range(length)] + ["sha256:absent"]}
            direct = usage._HELD.rows(uow.conn, params)
            plain = [tuple(r) for r in uow.conn.execute(usage._HELD.statements["sqlite"], params)]
            assert sorted(direct) == sorted(plain)
            assert len(direct) == length


def test_a_statement_on_the_driver_cursor_is_rolled_back_with_its_write(
    registry: Registry,
) -> None:
    content = pushed_image(registry, "team/app")
    push(registry, "team/app", "v1", content)
    with pytest.raises(RuntimeError), registry.database.write() as uow:
        repo_id = uow.repositories.ensure("team/app")
        uow.tags.move(repo_id, ["moved"], digest_of(content))
        raise RuntimeError("the push fails after the tag moved")
    with pytest.raises(ManifestUnknown):
        registry.manifests.get("team/app", "moved", with_content=False)


def test_a_conflict_on_the_driver_cursor_raises_sqlalchemys_integrity_error(
    registry: Registry,
) -> None:
    row = {"namespace": "ns", "kind": "blob", "digest": "sha256:x", "size": 1, "refs": 1}
    with pytest.raises(IntegrityError), registry.database.write() as uow:
        usage._ADD_CONTENT.run(uow.conn, [row])
        usage._ADD_CONTENT.run(uow.conn, [row])


def test_a_deleted_manifest_is_not_served_from_a_kept_read_connection(
    registry: Registry,
) -> None:
    content = pushed_image(registry, "team/app")
    push(registry, "team/app", "v1", content)
    digest = parse_digest(digest_of(content))
    assert registry.manifests.get("team/app", digest, with_content=True).content == content
    assert registry.manifests.get("team/app", "v1", with_content=False).digest == str(digest)
    asyncio.run(registry.manifests.delete("team/app", digest))
    with pytest.raises(ManifestUnknown):
        registry.manifests.get("team/app", digest, with_content=True)
    with pytest.raises(ManifestUnknown):
        registry.manifests.get("team/app", "v1", with_content=False)


def test_a_tag_moved_by_another_write_is_seen_by_the_next_read(registry: Registry) -> None:
    first, second = pushed_image(registry, "team/app"), pushed_image(registry, "team/app")
    push(registry, "team/app", "latest", first)
    assert registry.manifests.get("team/app", "latest", False).digest == digest_of(first)
    push(registry, "team/app", "latest", second)
    assert registry.manifests.get("team/app", "latest", False).digest == digest_of(second)


def test_an_unknown_manifest_keeps_the_threads_read_connection(registry: Registry) -> None:
    content = pushed_image(registry, "team/app")
    push(registry, "team/app", "v1", content)
    registry.manifests.get("team/app", "v1", False)
    kept = registry.database._readers.conn  # type: ignore[union-attr]
    for _ in range(10):  # more 404s than threads that may keep a connection
        with pytest.raises(ManifestUnknown):
            registry.manifests.get("team/app", "absent", False)
    assert registry.database._readers.conn is kept  # type: ignore[union-attr]
    assert registry.manifests.get("team/app", "v1", False).digest == digest_of(content)
