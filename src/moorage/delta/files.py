"""Local files of a delta push or pull: chunking (streamed), ModelPack manifests, safe paths."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..models.formats import FILEPATH_KEY, MODELPACK_CONFIG, MODELPACK_MANIFEST, TITLE_KEY

READ_SIZE = 1 << 20
DOC_SUFFIXES = {".md", ".txt", ".rst", ".pdf", ".html"}
DOC_NAMES = {"license", "readme", "notice", "copying"}
CODE_SUFFIXES = {".py", ".sh", ".ipynb", ".js", ".ts", ".go", ".rs", ".c", ".cpp", ".h"}
CONFIG_SUFFIXES = {".json", ".yaml", ".yml", ".toml", ".cfg", ".ini"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True, slots=True)
class LocalBlob:
    """A file to push: where it is, its path in the model, digest, size, chunks."""

    path: Path
    name: str  # the org.cncf.model.filepath annotation (POSIX, relative)
    digest: str
    size: int
    chunks: list[tuple[int, int, str]]  # (offset, length, chunk id)


def read_parts(path: Path, offset: int = 0) -> Iterator[bytes]:
    """A file's bytes from `offset`, in pieces of at most 1 MiB."""
    with path.open("rb") as f:
        f.seek(offset)
        while data := f.read(READ_SIZE):
            yield data


def read_range(path: Path, offset: int, length: int) -> bytes:
    """`length` bytes of a file from `offset`."""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


def chunk_file(path: Path, name: str, avg_size: int) -> LocalBlob:
    """Hash and chunk a file in one streamed pass (memory: one read plus the chunk list)."""
    from ..chunks.chunker import cut

    h = hashlib.sha256()
    size = 0

    def hashed() -> Iterator[bytes]:
        nonlocal size
        for data in read_parts(path):
            h.update(data)
            size += len(data)
            yield data

    chunks = [(c.offset, c.length, c.chunk_id) for c in cut(hashed(), avg_size)]
    return LocalBlob(path, name, f"sha256:{h.hexdigest()}", size, chunks)


def model_files(source: Path) -> list[tuple[Path, str]]:
    """(file, its model path) of a directory's regular files (or of one file), sorted;
    symbolic links are refused (they could point anywhere)."""
    if source.is_symlink():
        raise ValueError(f"{source} is a symbolic link")
    if source.is_file():
        return [(source, source.name)]
    out = []
    for root, dirs, files in os.walk(source):
        for d in dirs:
            if (Path(root) / d).is_symlink():
                raise ValueError(f"{Path(root) / d} is a symbolic link")
        for f in files:
            p = Path(root) / f
            if p.is_symlink():
                raise ValueError(f"{p} is a symbolic link")
            out.append((p, p.relative_to(source).as_posix()))
    return sorted(out, key=lambda item: item[1])


def layer_type(name: str) -> str:
    """The ModelPack layer media type of a file, by its name."""
    p = PurePosixPath(name)
    suffix = p.suffix.lower()
    if suffix in DOC_SUFFIXES or p.stem.lower() in DOC_NAMES:
        kind = "doc"
    elif suffix in CODE_SUFFIXES:
        kind = "code"
    elif suffix in CONFIG_SUFFIXES:
        kind = "weight.config"
    else:
        kind = "weight"
    return f"application/vnd.cncf.model.{kind}.v1.raw"


def model_config(name: str, blobs: list[LocalBlob]) -> bytes:
    """A ModelPack config for the files pushed (their digests as the model's diff ids)."""
    return json.dumps({
        "descriptor": {"name": name},
        "config": {},
        "modelfs": {"type": "layers", "diffIds": [b.digest for b in blobs]},
    }, sort_keys=True).encode()


def descriptor(media_type: str, digest: str, size: int, **annotations: str) -> dict[str, Any]:
    """An OCI descriptor."""
    d: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        d["annotations"] = annotations
    return d


def model_manifest(config: bytes, blobs: list[LocalBlob]) -> bytes:
    """A ModelPack manifest of `config` and one raw layer per file."""
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": MODELPACK_MANIFEST,
        "config": descriptor(MODELPACK_CONFIG, sha256_of(config), len(config)),
        "layers": [descriptor(layer_type(b.name), b.digest, b.size,
                              **{FILEPATH_KEY: b.name, TITLE_KEY: PurePosixPath(b.name).name})
                   for b in blobs],
    }, sort_keys=True).encode()


def sha256_of(data: bytes) -> str:
    """The sha256 digest of bytes."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def safe_target(root: Path, name: str) -> Path:
    """Where model path `name` goes under `root`; ValueError for an absolute path, `..`, or a
    path through a symbolic link."""
    p = PurePosixPath(name)
    if not name or p.is_absolute() or "\\" in name or any(part in ("..", "") for part in
                                                           name.split("/")) or ":" in p.parts[0]:
        raise ValueError(f"refusing the file path {name!r}")
    target = root.joinpath(*p.parts)
    at = root
    for part in p.parts:
        at = at / part
        if at.is_symlink():
            raise ValueError(f"refusing {name!r}: {at} is a symbolic link")
    return target
