"""Rows derived from a manifest and keyed by its name (its scan report, its model index entry):
deleted in the same transaction as the manifest, by every path that deletes manifests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, delete, select

from ..schema import manifests, models, repositories, scan_reports

CHUNK = 500  # ids (and digests) per IN (...) list


def on_manifests_deleted(conn: Connection, manifest_ids: Sequence[int]) -> None:
    """Delete the scan reports and model rows of manifests about to be deleted (call before
    deleting their rows; model files and tensors go with their model by cascade)."""
    ids = list(manifest_ids)
    by_repository: defaultdict[str, list[str]] = defaultdict(list)
    for start in range(0, len(ids), CHUNK):
        for name, digest in conn.execute(
            select(repositories.c.name, manifests.c.digest)
            .join(repositories, repositories.c.id == manifests.c.repository_id)
            .where(manifests.c.id.in_(ids[start : start + CHUNK]))
        ):
            by_repository[name].append(digest)
    for name, digests in by_repository.items():
        for start in range(0, len(digests), CHUNK):
            part = digests[start : start + CHUNK]
            for table in (scan_reports, models):
                conn.execute(delete(table).where(table.c.repository == name,
                                                 table.c.digest.in_(part)))
