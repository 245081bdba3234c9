"""The model index: one row per model manifest, its files and their tensors."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, exists, select, update

from ..base import column_text
from ..schema import manifests, model_files, model_tensors, models, repositories, tags

if TYPE_CHECKING:
    from ..uow import UnitOfWork

COLUMNS = ("kind", "name", "family", "version", "architecture", "params", "precision",
           "quantization", "format", "license", "training_run", "training_run_url",
           "dataset_digest", "base_digest", "base_name", "parse_error")
_LIMITS = {"name": 400, "family": 200, "version": 200, "architecture": 200, "precision": 100,
           "quantization": 100, "format": 100, "license": 400, "training_run": 400,
           "dataset_digest": 200, "base_digest": 200, "base_name": 400, "kind": 32,
           "training_run_url": 4000, "parse_error": 4000}
# A model row is listed only while its manifest is stored in its repository.
_STORED = exists().where(
    repositories.c.name == models.c.repository, manifests.c.repository_id == repositories.c.id,
    manifests.c.digest == models.c.digest)


class ModelQueries:
    """The model index within one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn = uow.conn

    def replace(self, repository: str, digest: str, row: Mapping[str, Any],
                files: Sequence[Mapping[str, Any]]) -> int:
        """Store (or overwrite) the model `repository@digest` with its files, each file with
        its `tensors`; the model's id."""
        self.conn.execute(delete(models).where(models.c.repository == repository,
                                               models.c.digest == digest))
        values = {c: column_text(row.get(c), _LIMITS.get(c, 4000)) for c in COLUMNS}
        values.update(repository=repository, digest=digest, indexed_at=time.time(),
                      annotations=json.dumps(row.get("annotations") or {}),
                      metrics=json.dumps(row.get("metrics") or {}),
                      details=json.dumps(row.get("details") or {}, default=str))
        model_id = self.conn.execute(models.insert().returning(models.c.id), values).scalar_one()
        for f in files:
            file_id = self.conn.execute(model_files.insert().returning(model_files.c.id), {
                "model_id": model_id, "path": column_text(f["path"], 4000), "size": f["size"],
                "layer_digest": f["layer_digest"], "layer_offset": f["layer_offset"],
                "media_type": column_text(f["media_type"], 255)}).scalar_one()
            rows = [{"file_id": file_id, "name": column_text(t["name"], 4000),
                     "dtype": column_text(t["dtype"], 32), "shape": json.dumps(t["shape"]),
                     "blob_offset": t["blob_offset"], "length": t["length"]}
                    for t in f.get("tensors") or []]
            if rows:
                self.conn.execute(model_tensors.insert(), rows)
        return int(model_id)

    def merge_lineage(self, repository: str, digest: str, values: Mapping[str, Any],
                      metrics: Mapping[str, float]) -> bool:
        """Fill the lineage columns and metrics of a stored model from a referrer; False when
        the model is not indexed (yet)."""
        row = self.conn.execute(select(models.c.id, models.c.metrics).where(
            models.c.repository == repository, models.c.digest == digest)).first()
        if row is None:
            return False
        merged = {**json.loads(row.metrics), **metrics}
        changes: dict[str, Any] = {k: column_text(v, _LIMITS[k]) for k, v in values.items()}
        changes["metrics"] = json.dumps(merged)
        self.conn.execute(update(models).where(models.c.id == row.id).values(changes))
        return True

    def page(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Stored models by id after `after_id`, at most `limit`."""
        query = (select(models).where(models.c.id > after_id, _STORED)
                 .order_by(models.c.id).limit(limit))
        return [_model(r) for r in self.conn.execute(query)]

    def get(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The stored model `repository@digest`, None when it is not indexed."""
        row = self.conn.execute(select(models).where(
            models.c.repository == repository, models.c.digest == digest, _STORED)).first()
        return _model(row) if row is not None else None

    def with_digest(self, digest: str) -> list[dict[str, Any]]:
        """Every stored model whose manifest digest is `digest` (any repository)."""
        query = select(models).where(models.c.digest == digest, _STORED).order_by(models.c.id)
        return [_model(r) for r in self.conn.execute(query)]

    def fine_tunes_of(self, digest: str) -> list[dict[str, Any]]:
        """Stored models whose base digest is `digest`."""
        query = (select(models).where(models.c.base_digest == digest, _STORED)
                 .order_by(models.c.id))
        return [_model(r) for r in self.conn.execute(query)]

    def files(self, model_id: int, with_tensors: bool) -> list[dict[str, Any]]:
        """The files of a model by path, each with its tensors (in offset order) if asked."""
        query = select(model_files).where(model_files.c.model_id == model_id).order_by(
            model_files.c.path, model_files.c.id)
        found = [{"id": r.id, "path": r.path, "size": r.size, "layer_digest": r.layer_digest,
                  "layer_offset": r.layer_offset, "media_type": r.media_type}
                 for r in self.conn.execute(query)]
        if with_tensors and found:
            by_file: dict[int, list[dict[str, Any]]] = {f["id"]: [] for f in found}
            t = model_tensors.c
            query = select(model_tensors).where(t.file_id.in_(list(by_file))).order_by(
                t.file_id, t.blob_offset, t.id)
            for r in self.conn.execute(query):
                by_file[r.file_id].append({"name": r.name, "dtype": r.dtype,
                                           "shape": json.loads(r.shape),
                                           "offset": r.blob_offset, "length": r.length})
            for f in found:
                f["tensors"] = by_file[f["id"]]
        for f in found:
            del f["id"]
        return found

    def tags_of(self, repository: str, digest: str) -> list[str]:
        """The tags of `repository` pointing at `digest`, by name."""
        query = (select(tags.c.name)
                 .join(repositories, and_(repositories.c.id == tags.c.repository_id))
                 .where(repositories.c.name == repository, tags.c.manifest_digest == digest)
                 .order_by(tags.c.name))
        return list(self.conn.execute(query).scalars())


def _model(row: Any) -> dict[str, Any]:
    m = row._mapping
    out = {c: m[c] for c in COLUMNS}
    out.update(id=m["id"], repository=m["repository"], digest=m["digest"],
               annotations=json.loads(m["annotations"]), metrics=json.loads(m["metrics"]),
               details=json.loads(m["details"]), indexed_at=m["indexed_at"])
    return out
