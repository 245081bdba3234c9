"""`post-push.models`: index each pushed model manifest (ModelPack, KitOps, Docker model).

The job reads the manifest row, the config blob (at most 4 MiB) and, for safetensors files in
raw or uncompressed tar layers, only their headers through bounded reads; it never reads the
weights. A referrer that carries lineage keys (`org.moorage.training.run`, base digest, …) is
merged into its subject's row, whichever of the two is indexed first.
"""

from __future__ import annotations

import json
import logging
import tarfile
from typing import TYPE_CHECKING, Any

from ..oci.mediatypes import IMAGE_TYPES
from . import formats
from .gguf import GgufInvalid, read_gguf
from .reader import RangeReader
from .safetensors import HeaderInvalid, read_tensors

if TYPE_CHECKING:
    from ..bootstrap import Registry
    from ..metadata.uow import UnitOfWork

log = logging.getLogger(__name__)

NAME = "models"
MAX_TAR_MEMBERS = 100_000


class ModelsProcessor:
    """Recognises model manifests and keeps the model index (`models`, files, tensors)."""

    name = NAME

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def wants(self, event: dict[str, Any]) -> bool:
        """Image-style manifests: a model, or a referrer that may carry lineage keys (the event
        does not say which; the job decides in one row read)."""
        return (event.get("payload") or {}).get("media_type") in IMAGE_TYPES

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Index the model `repository@digest`, or merge a referrer's lineage into its subject."""
        repository, digest = payload["repository"], payload["digest"]
        with self.registry.database.read() as uow:
            row = uow.manifests.get(repository, digest, None, True)
        if row is None or row.content is None:
            return {"skipped": "the manifest is gone"}
        try:
            manifest = json.loads(row.content)
        except ValueError:
            return {"skipped": "not JSON"}
        if not isinstance(manifest, dict):
            return {"skipped": "not a manifest object"}
        kind = formats.recognise(manifest)
        if kind is None:
            return self._referrer(repository, manifest)
        model = self._describe(repository, kind, manifest)
        row_values, files = self._row(model)
        with self.registry.database.write() as uow:
            self._merge_referrers(uow, repository, digest, row_values)
            model_id = uow.models.replace(repository, digest, row_values, files)
        tensors = sum(len(f["tensors"]) for f in files)
        log.info("model indexed", extra={"repository": repository, "digest": digest,
                                         "kind": kind, "files": len(files), "tensors": tensors})
        return {"model": model_id, "kind": kind, "files": len(files), "tensors": tensors,
                "parse_error": model.parse_error}

    # -- reading the artifact --------------------------------------------------------------

    def _describe(self, repository: str, kind: str, manifest: dict[str, Any]) -> formats.Model:
        config, error = self._config(repository, manifest.get("config"))
        model = formats.describe(kind, manifest, config, error)
        for file in list(model.files):
            packing = formats.layer_packing(file.media_type)
            try:
                if packing == "raw" and formats.is_safetensors(file):
                    reader = self._reader(repository, file.layer_digest)
                    if reader is not None:
                        file.tensors = read_tensors(reader.read_at, 0, reader.size)
                elif packing == "raw" and formats.is_gguf(file):
                    self._gguf(repository, model, file)
                elif packing == "tar":
                    self._expand_tar(repository, model, file)
            except (HeaderInvalid, GgufInvalid, tarfile.TarError, OSError, ValueError) as exc:
                model.details.setdefault("file_errors", {})[file.path] = str(exc)[:500]
        return model

    def _config(self, repository: str, desc: Any) -> tuple[bytes | None, str | None]:
        if not isinstance(desc, dict) or not desc.get("digest"):
            return None, "the manifest has no config descriptor"
        reader = self._reader(repository, str(desc["digest"]))
        if reader is None:
            return None, f"the config blob {desc['digest']} is not in the repository"
        if reader.size > formats.MAX_CONFIG_BYTES:
            return None, (f"the config of {reader.size} bytes is larger than "
                          f"{formats.MAX_CONFIG_BYTES}")
        return reader.read_at(0, reader.size), None

    def _reader(self, repository: str, digest: str) -> RangeReader | None:
        from ..oci.digest import parse_digest
        from ..oci.errors import BlobUnknown, DigestInvalid

        try:
            blob = self.registry.blobs.locate(repository, parse_digest(digest))
        except (BlobUnknown, DigestInvalid):
            return None
        store = self.registry.blob_store
        return RangeReader(lambda o, n: store.open_blob(blob.storage_key, o, n), blob.size)

    def _gguf(self, repository: str, model: formats.Model, file: formats.ModelFile) -> None:
        """Tensors of a GGUF file; its general.* metadata fills fields the config left out."""
        import io

        reader = self._reader(repository, file.layer_digest)
        if reader is None:
            return
        meta, file.tensors = read_gguf(io.BufferedReader(reader, 1 << 20), reader.size)
        model.details.setdefault("gguf", {})[file.path] = meta
        for col, key in (("architecture", "general.architecture"), ("name", "general.name"),
                         ("license", "general.license")):
            if not model.fields.get(col) and isinstance(meta.get(key), str):
                model.fields[col] = meta[key]
        if model.fields.get("params") is None and isinstance(
                meta.get("general.parameter_count"), int):
            model.fields["params"] = float(meta["general.parameter_count"])

    def _expand_tar(self, repository: str, model: formats.Model, layer: formats.ModelFile
                    ) -> None:
        """Replace an uncompressed tar layer's entry by its regular members (data offsets)."""
        reader = self._reader(repository, layer.layer_digest)
        if reader is None:
            return
        members = []
        with tarfile.open(fileobj=reader, mode="r:") as tar:
            for count, info in enumerate(tar):
                if count >= MAX_TAR_MEMBERS:
                    raise ValueError(f"more than {MAX_TAR_MEMBERS} members")
                if not info.isfile():
                    continue
                member = formats.ModelFile(info.name.removeprefix("./") or info.name, info.size,
                                           layer.layer_digest, info.offset_data,
                                           layer.media_type)
                if formats.is_safetensors(member):
                    try:
                        member.tensors = read_tensors(reader.read_at, info.offset_data,
                                                      info.size)
                    except HeaderInvalid as exc:
                        model.details.setdefault("file_errors", {})[member.path] = str(exc)
                members.append(member)
        index = model.files.index(layer)
        model.files[index:index + 1] = members

    # -- rows and lineage ------------------------------------------------------------------

    def _row(self, model: formats.Model) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        cols, metrics = formats.lineage(model.annotations)
        row: dict[str, Any] = {**model.fields, **cols, "kind": model.kind,
                               "annotations": model.annotations, "metrics": metrics,
                               "details": model.details, "parse_error": model.parse_error}
        files = [{"path": f.path, "size": f.size, "layer_digest": f.layer_digest,
                  "layer_offset": f.layer_offset, "media_type": f.media_type,
                  "tensors": f.tensors} for f in model.files]
        return row, files

    def _merge_referrers(self, uow: UnitOfWork, repository: str, digest: str,
                         row: dict[str, Any]) -> None:
        """Lineage keys of referrers stored before this job fill what the model leaves out."""
        for ref in uow.referrers.list(repository, digest, None, None, 1000):
            cols, metrics = formats.lineage(ref.annotations or {})
            for key, value in cols.items():
                row.setdefault(key, None)
                if not row[key]:
                    row[key] = value
            row["metrics"] = {**metrics, **row["metrics"]}

    def _referrer(self, repository: str, manifest: dict[str, Any]) -> dict[str, Any]:
        subject = manifest.get("subject")
        annotations = manifest.get("annotations")
        if not isinstance(subject, dict) or not isinstance(annotations, dict):
            return {"skipped": "not a model"}
        cols, metrics = formats.lineage({str(k): str(v) for k, v in annotations.items()})
        if not cols and not metrics:
            return {"skipped": "not a model"}
        with self.registry.database.write() as uow:
            merged = uow.models.merge_lineage(repository, str(subject.get("digest")), cols,
                                              metrics)
        # Not indexed yet: the subject's own job reads this referrer when it runs.
        return {"lineage_for": subject.get("digest"), "merged": merged}
