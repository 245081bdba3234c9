"""Model artifacts for the tests: safetensors files with real headers and random tensor data,
and ModelPack, KitOps and Docker-model manifests built from them (not pushed: push_tree does)."""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
from dataclasses import dataclass, field
from typing import Any

from support.oci import OCI_MANIFEST, Blob, Manifest, dumps

MODELPACK_MANIFEST = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_TAR = "application/vnd.cncf.model.weight.v1.tar"
WEIGHT_CONFIG_RAW = "application/vnd.cncf.model.weight.config.v1.raw"
DOC_RAW = "application/vnd.cncf.model.doc.v1.raw"
KITOPS_MANIFEST = "application/vnd.kitops.modelkit.manifest.v1+json"
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.ai.model.config.v0.1+json"
DOCKER_GGUF = "application/vnd.docker.ai.gguf.v3"
DOCKER_LICENSE = "application/vnd.docker.ai.license"
FILEPATH = "org.cncf.model.filepath"
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "I64": 8}


@dataclass
class Tensor:
    """A tensor as written: its data, and where the header says it is (filled by `build`)."""

    name: str
    dtype: str
    shape: list[int]
    data: bytes
    file_offset: int = 0  # from the start of the safetensors file


@dataclass
class Safetensors:
    """A safetensors file: bytes, and its tensors with their offsets in the file."""

    tensors: list[Tensor]
    data: bytes = b""
    header_length: int = 0

    def tensor(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t.name == name)


def tensor(name: str, dtype: str, shape: list[int], data: bytes | None = None) -> Tensor:
    """A tensor of random data (or `data`) of the size its dtype and shape give."""
    n = DTYPE_BYTES[dtype]
    for d in shape:
        n *= d
    return Tensor(name, dtype, shape, os.urandom(n) if data is None else data)


def safetensors(tensors: list[Tensor], metadata: dict[str, str] | None = None) -> Safetensors:
    """The file of `tensors` (in order), header padded to 8 bytes like the reference writer."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": t.shape,
                          "data_offsets": [offset, offset + len(t.data)]}
        offset += len(t.data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    for t, start in zip(tensors, _starts(tensors), strict=True):
        t.file_offset = 8 + len(raw) + start
    body = struct.pack("<Q", len(raw)) + raw + b"".join(t.data for t in tensors)
    return Safetensors(tensors, body, len(raw))


def _starts(tensors: list[Tensor]) -> list[int]:
    out, at = [], 0
    for t in tensors:
        out.append(at)
        at += len(t.data)
    return out


def tar_of(files: dict[str, bytes]) -> tuple[bytes, dict[str, int]]:
    """An uncompressed tar of `files` and each member's data offset."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    body = out.getvalue()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        offsets = {m.name: m.offset_data for m in tar.getmembers()}
    return body, offsets


@dataclass
class Layer:
    """A layer blob with the annotations of its descriptor."""

    blob: Blob
    annotations: dict[str, str] = field(default_factory=dict)

    def descriptor(self) -> dict[str, Any]:
        return self.blob.descriptor(**({"annotations": self.annotations}
                                       if self.annotations else {}))


def file_layer(data: bytes, media_type: str, path: str | None) -> Layer:
    """A layer holding one file, its path in `org.cncf.model.filepath` (if given)."""
    return Layer(Blob(data, media_type), {FILEPATH: path} if path else {})


def manifest(config: bytes, config_type: str, layers: list[Layer],
             artifact_type: str | None = None, annotations: dict[str, str] | None = None,
             subject: Manifest | None = None) -> Manifest:
    """An OCI image manifest of a model (blobs attached for push_tree)."""
    cfg = Blob(config, config_type)
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = cfg.descriptor()
    doc["layers"] = [x.descriptor() for x in layers]
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations:
        doc["annotations"] = annotations
    return Manifest(dumps(doc), OCI_MANIFEST, blobs=[cfg, *(x.blob for x in layers)])


def modelpack_config(**config: Any) -> bytes:
    """A ModelPack config: descriptor keys (name family version licenses …) and config keys
    (architecture format paramSize precision quantization capabilities) by name."""
    descriptor_keys = ("name", "family", "version", "licenses", "authors", "title", "vendor")
    desc = {k: v for k, v in config.items() if k in descriptor_keys}
    cfg = {k: v for k, v in config.items() if k not in descriptor_keys}
    return json.dumps({"descriptor": desc, "config": cfg,
                       "modelfs": {"type": "layers", "diff_ids": []}}).encode()


def modelpack(layers: list[Layer], annotations: dict[str, str] | None = None,
              config: bytes | None = None, **fields: Any) -> Manifest:
    """A ModelPack manifest (artifactType and config media type of the model-spec)."""
    return manifest(config if config is not None else modelpack_config(**fields),
                    MODELPACK_CONFIG, layers, MODELPACK_MANIFEST, annotations)


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf(tensors: list[tuple[str, int, list[int], bytes]], metadata: dict[str, Any],
         alignment: int = 32) -> tuple[bytes, dict[str, int]]:
    """A GGUF v3 file of (name, ggml type, shape, data) tensors and string / int / list-of-
    string metadata; and each tensor's offset in the file."""
    kv = b""
    for key, value in metadata.items():
        kv += _gguf_string(key)
        if isinstance(value, str):
            kv += struct.pack("<I", 8) + _gguf_string(value)
        elif isinstance(value, int):
            kv += struct.pack("<I", 4) + struct.pack("<I", value)
        else:
            kv += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_gguf_string(v)
                                                                   for v in value)
    infos, offset, starts = b"", 0, []
    for name, kind, shape, data in tensors:
        offset += -offset % alignment
        starts.append(offset)
        infos += _gguf_string(name) + struct.pack("<I", len(shape)) + b"".join(
            struct.pack("<Q", d) for d in shape) + struct.pack("<IQ", kind, offset)
        offset += len(data)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)) + kv + infos
    head += bytes(-len(head) % alignment)
    body, at = b"", 0
    for (_n, _k, _s, data), start in zip(tensors, starts, strict=True):
        body += bytes(start - at) + data
        at = start + len(data)
    return head + body, {t[0]: len(head) + s for t, s in zip(tensors, starts, strict=True)}
