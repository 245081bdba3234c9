"""Recognising model manifests and reading their configs: pure functions, no I/O.

ModelPack (CNCF model-spec), KitOps ModelKits and Docker model artifacts each say what they are
in the manifest's artifactType or config media type; `recognise` answers the kind and `describe`
turns a manifest and its config bytes into the index's fields and file list. A config that does
not parse still gives a model, with `parse_error` saying why.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .params import parse_count

MODELPACK_MANIFEST = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
MODELPACK_LAYER = "application/vnd.cncf.model."
KITOPS_MANIFEST = "application/vnd.kitops.modelkit.manifest.v1+json"
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
KITOPS_LAYER = "application/vnd.kitops.modelkit."
DOCKER_CONFIG = "application/vnd.docker.ai.model.config."
DOCKER_LAYER = "application/vnd.docker.ai."
FILEPATH_KEY = "org.cncf.model.filepath"
TITLE_KEY = "org.opencontainers.image.title"

RUN_KEY = "org.moorage.training.run"
RUN_URL_KEY = "org.moorage.training.run.url"
METRIC_PREFIX = "org.moorage.metrics."
DATASET_KEY = "org.moorage.dataset.digest"
BASE_DIGEST_KEY = "org.opencontainers.image.base.digest"
BASE_NAME_KEY = "org.opencontainers.image.base.name"
LINEAGE_KEYS = (RUN_KEY, RUN_URL_KEY, DATASET_KEY, BASE_DIGEST_KEY, BASE_NAME_KEY)

MAX_CONFIG_BYTES = 4 << 20


@dataclass(slots=True)
class ModelFile:
    """A file of a model: where its bytes are (layer, offset) and what it is."""

    path: str
    size: int
    layer_digest: str
    layer_offset: int | None
    media_type: str
    tensors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Model:
    """What the index keeps of one model manifest."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    parse_error: str | None = None
    files: list[ModelFile] = field(default_factory=list)


def recognise(manifest: Mapping[str, Any]) -> str | None:
    """`modelpack`, `kitops` or `docker` for a model manifest; None for anything else."""
    artifact = str(manifest.get("artifactType") or "")
    config = manifest.get("config")
    config_type = str(config.get("mediaType") or "") if isinstance(config, dict) else ""
    if artifact == MODELPACK_MANIFEST or config_type == MODELPACK_CONFIG:
        return "modelpack"
    if artifact == KITOPS_MANIFEST or config_type == KITOPS_CONFIG:
        return "kitops"
    if config_type.startswith(DOCKER_CONFIG):
        return "docker"
    return None


def layer_packing(media_type: str) -> str:
    """`raw` (the blob is the file), `tar` (uncompressed, members have offsets) or
    `compressed` (tar+gzip / tar+zstd: no byte offsets to give)."""
    if media_type.endswith(("+gzip", "+zstd", ".gzip", ".zstd", ".tgz")):
        return "compressed"
    if media_type.endswith(".tar") or ".tar;" in media_type:
        return "tar"
    return "raw"


def lineage(annotations: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, float]]:
    """(lineage columns, metrics) named by annotations; a metric that is not a number is left
    out."""
    cols = {"training_run": annotations.get(RUN_KEY),
            "training_run_url": annotations.get(RUN_URL_KEY),
            "dataset_digest": annotations.get(DATASET_KEY),
            "base_digest": annotations.get(BASE_DIGEST_KEY),
            "base_name": annotations.get(BASE_NAME_KEY)}
    metrics: dict[str, float] = {}
    for key, value in annotations.items():
        if key.startswith(METRIC_PREFIX) and len(key) > len(METRIC_PREFIX):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                metrics[key[len(METRIC_PREFIX):]] = number
    return {k: v for k, v in cols.items() if v}, metrics


def describe(kind: str, manifest: Mapping[str, Any], config: bytes | None,
             config_error: str | None = None) -> Model:
    """The index entry of a model manifest whose config blob is `config` (None: unreadable,
    `config_error` says why)."""
    annotations = {str(k): str(v) for k, v in (manifest.get("annotations") or {}).items()}
    model = Model(kind, annotations=annotations)
    layers = [x for x in manifest.get("layers") or [] if isinstance(x, dict)]
    doc: Any = None
    if config is None:
        model.parse_error = config_error or "the config blob is missing"
    else:
        try:
            doc = json.loads(config)
            if not isinstance(doc, dict):
                raise TypeError(f"the config is a JSON {type(doc).__name__}, not an object")
            {"modelpack": _modelpack, "kitops": _kitops, "docker": _docker}[kind](model, doc)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            model.parse_error = f"config: {exc}"[:1000]
    model.files = _files(kind, layers, doc if isinstance(doc, dict) else {})
    # Annotations name what the config did not (and OCI's standard keys are a fallback).
    fallback = {"name": TITLE_KEY, "version": "org.opencontainers.image.version",
                "license": "org.opencontainers.image.licenses"}
    for col, key in fallback.items():
        if not model.fields.get(col) and annotations.get(key):
            model.fields[col] = annotations[key]
    return model


def _text(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"{what} is a JSON {type(value).__name__}, not a string")
    return str(value)


def _obj(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} is not a list of strings")
    return value


def _params(model: Model, value: Any, what: str) -> None:
    text = _text(value, what)
    if text is None:
        return
    count = parse_count(text)
    model.details["param_size"] = text
    if count is None:
        raise ValueError(f"{what} {text!r} is not a count such as 7B, 1.5B or 770M")
    model.fields["params"] = count


def _modelpack(model: Model, doc: dict[str, Any]) -> None:
    desc = _obj(doc.get("descriptor"), "descriptor")
    cfg = _obj(doc.get("config"), "config")
    f = model.fields
    f["name"] = _text(desc.get("name"), "descriptor.name")
    f["family"] = _text(desc.get("family"), "descriptor.family")
    f["version"] = _text(desc.get("version"), "descriptor.version")
    licenses = _strings(desc.get("licenses"), "descriptor.licenses")
    f["license"] = " AND ".join(licenses) or None
    f["architecture"] = _text(cfg.get("architecture"), "config.architecture")
    f["format"] = _text(cfg.get("format"), "config.format")
    f["precision"] = _text(cfg.get("precision"), "config.precision")
    f["quantization"] = _text(cfg.get("quantization"), "config.quantization")
    model.details.update({k: desc[k] for k in ("title", "description", "vendor", "authors",
                                                "createdAt", "docURL", "sourceURL", "revision")
                          if k in desc})
    capabilities = cfg.get("capabilities", doc.get("capabilities"))
    if capabilities is not None:
        model.details["capabilities"] = _obj(capabilities, "config.capabilities")
    _params(model, cfg.get("paramSize"), "config.paramSize")


def _kitops(model: Model, doc: dict[str, Any]) -> None:
    package = _obj(doc.get("package"), "package")
    spec = _obj(doc.get("model"), "model")
    f = model.fields
    f["name"] = _text(spec.get("name"), "model.name") or _text(package.get("name"),
                                                               "package.name")
    f["version"] = _text(spec.get("version"), "model.version") or _text(
        package.get("version"), "package.version")
    f["format"] = _text(spec.get("framework"), "model.framework")
    f["license"] = _text(spec.get("license"), "model.license") or _text(
        package.get("license"), "package.license")
    f["family"] = _text(package.get("family"), "package.family")
    model.details["package"] = {k: package[k] for k in ("name", "version", "description",
                                                        "authors") if k in package}
    model.details["authors"] = _strings(package.get("authors"), "package.authors")
    parameters = spec.get("parameters")
    if isinstance(parameters, dict):
        for key in ("paramSize", "parameters", "params"):
            if key in parameters:
                _params(model, parameters[key], f"model.parameters.{key}")
                break
        for key in ("architecture", "precision", "quantization"):
            if key in parameters:
                f[key] = _text(parameters[key], f"model.parameters.{key}")
    for part in ("datasets", "code", "docs"):
        value = doc.get(part)
        if value is not None and not isinstance(value, list):
            raise ValueError(f"{part} is not a list")


def _docker(model: Model, doc: dict[str, Any]) -> None:
    cfg = _obj(doc.get("config"), "config")
    f = model.fields
    f["format"] = _text(cfg.get("format"), "config.format")
    f["quantization"] = _text(cfg.get("quantization"), "config.quantization")
    f["architecture"] = _text(cfg.get("architecture"), "config.architecture")
    f["precision"] = _text(cfg.get("precision"), "config.precision")
    if cfg.get("size") is not None:
        model.details["size"] = _text(cfg.get("size"), "config.size")
    desc = _obj(doc.get("descriptor"), "descriptor")
    if "created" in desc:
        model.details["created"] = desc["created"]
    _params(model, cfg.get("parameters"), "config.parameters")


def _kitfile_paths(doc: Mapping[str, Any]) -> dict[str, list[str]]:
    """The paths the Kitfile lists per layer type, in the order KitOps packs them."""
    spec = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    assert isinstance(spec, dict)

    def paths(items: Any) -> list[str]:
        return [str(i.get("path")) for i in items or [] if isinstance(i, dict) and i.get("path")]

    return {"model": [str(spec["path"])] if spec.get("path") else [],
            "modelpart": paths(spec.get("parts")), "dataset": paths(doc.get("datasets")),
            "code": paths(doc.get("code")), "docs": paths(doc.get("docs"))}


def _files(kind: str, layers: list[dict[str, Any]], doc: Mapping[str, Any]) -> list[ModelFile]:
    kit = _kitfile_paths(doc) if kind == "kitops" else {}
    files = []
    for layer in layers:
        media_type = str(layer.get("mediaType") or "")
        digest = str(layer.get("digest") or "")
        size = layer.get("size")
        if not digest or not isinstance(size, int):
            continue
        notes = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
        assert isinstance(notes, dict)
        path = notes.get(FILEPATH_KEY) or notes.get(TITLE_KEY)
        if not path and kind == "kitops":
            part = media_type[len(KITOPS_LAYER):].split(".")[0] if media_type.startswith(
                KITOPS_LAYER) else ""
            queue = kit.get(part) or []
            path = queue.pop(0) if queue else None
        if not path:
            path = _default_name(media_type, digest)
        files.append(ModelFile(posixpath.normpath(str(path)), size, digest,
                               0 if layer_packing(media_type) == "raw" else None, media_type))
    return files


def _default_name(media_type: str, digest: str) -> str:
    short = digest.split(":")[-1][:12]
    if "gguf" in media_type:
        return f"model-{short}.gguf"
    if "safetensors" in media_type:
        return f"model-{short}.safetensors"
    if "license" in media_type:
        return "LICENSE"
    return short


def is_gguf(file: ModelFile) -> bool:
    """Whether a file is a GGUF file (by name or Docker's media type)."""
    return file.path.endswith(".gguf") or "gguf" in file.media_type


def is_safetensors(file: ModelFile) -> bool:
    """Whether a file is a safetensors file (by name or Docker's media type)."""
    return file.path.endswith(".safetensors") or "safetensors" in file.media_type
