"""Secrets and model files in every layer, found during the catalogue's one read of it.

Each layer's own members are looked at, not only the final filesystem: a secret a later layer
deletes is still in the image, and so still reported.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from . import models, secrets
from .layers import WHITEOUT, Entry, Scan, Spool, Spooled
from .models import HeadScanner, ModelFinding
from .secrets import SecretFinding, SecretScanner

TITLE = "org.opencontainers.image.title"
MODEL_MAX_BYTES = 8 << 30  # pickle-based files larger than this are reported, not checked
MAX_FINDINGS = 1000  # per report and kind: the rest are counted


class LayerInspector:
    """Collects secret and model findings across the layers of one image."""

    def __init__(self, secret_bytes: int = secrets.MAX_FILE_BYTES,
                 model_bytes: int = MODEL_MAX_BYTES, scan_secrets: bool = True,
                 scan_models: bool = True) -> None:
        self.secret_bytes = secret_bytes
        self.model_bytes = model_bytes
        self.scan_secrets = scan_secrets
        self.scan_models = scan_models
        self.secrets: list[SecretFinding] = []
        self.models: list[ModelFinding] = []
        self.dropped = 0  # findings beyond MAX_FINDINGS
        self._asked: dict[str, str] = {}  # path → what we asked for, in the current layer

    def want(self, entry: Entry, catalogued: bool | Spool | Scan) -> bool | Spool | Scan:
        """The catalogers' request wins (their bytes are also read for secrets); else a
        model file is spooled (pickles) or its header streamed, a small text file streamed."""
        if catalogued:
            return catalogued
        if posixpath.basename(entry.path).startswith(WHITEOUT):
            return False
        kind = models.kind_of(entry.path) if self.scan_models else None
        if kind == "pickle":
            self._asked[entry.path] = "pickle"
            return Spool(self.model_bytes)
        if kind is not None:
            self._asked[entry.path] = "head"
            return Scan(lambda: HeadScanner(entry.path, entry.size))
        if self.scan_secrets and secrets.wants(entry.path, entry.size, self.secret_bytes):
            self._asked[entry.path] = "secrets"
            return Scan(lambda: SecretScanner(entry.path, self.secret_bytes))
        return False

    def entries(self, layer: str, stream: Iterable[tuple[Entry, Any]]
                ) -> Iterator[tuple[Entry, Any]]:
        """The layer's members for the catalogue; what only we asked for is consumed here."""
        for entry, data in stream:
            asked = self._asked.pop(entry.path, None)
            if asked is None:
                if (self.scan_secrets and isinstance(data, bytes)
                        and len(data) <= self.secret_bytes):
                    self._add_secrets(layer, secrets.scan_text(entry.path, data))
                yield entry, data
                continue
            if asked == "pickle":
                if isinstance(data, Spooled):
                    with open(data.path, "rb") as f:
                        self._add_models(layer, models.check_model_file(
                            f, entry.path, data.size, self.model_bytes))
                else:
                    self._add_models(layer, [ModelFinding(
                        entry.path, "not-checked",
                        f"{entry.size} bytes, above the {self.model_bytes} a scan checks")])
            elif asked == "head" and data is not None:
                self._add_models(layer, data)
            elif asked == "secrets" and data is not None:
                self._add_secrets(layer, data)
            yield entry, None

    def raw_layer(self, layer: str, desc: dict[str, Any], chunks: Iterable[bytes]) -> None:
        """A non-tar layer: a model file (by its title or magic bytes) or a small text file."""
        title = str((desc.get("annotations") or {}).get(TITLE) or "")
        path = posixpath.basename(title) if title else layer
        size = int(desc.get("size") or 0)
        it = iter(chunks)
        first = b""
        for piece in it:
            if piece:
                first = piece
                break
        kind = models.kind_of(path)
        if first.startswith(models.GGUF_MAGIC):
            kind = "gguf"
        elif first.startswith(models.ZIP_MAGIC) or (kind is None and first[:1] == b"\x80"):
            kind = "pickle"
        elif kind is None and _safetensors_like(first):
            kind = "safetensors"
        if kind is not None and self.scan_models:
            self._raw_model(layer, path, kind, size, first, it)
        elif self.scan_secrets and 0 < size <= self.secret_bytes:
            scanner = SecretScanner(path, self.secret_bytes)
            if scanner.feed(first):
                for piece in it:
                    if not scanner.feed(piece):
                        break
            self._add_secrets(layer, scanner.result())

    def _raw_model(self, layer: str, path: str, kind: str, size: int, first: bytes,
                   rest: Iterator[bytes]) -> None:
        if kind in ("gguf", "safetensors"):
            named = path if models.kind_of(path) == kind else f"{path}.{kind}"
            scanner = HeadScanner(named, size)
            if scanner.feed(first):
                for piece in rest:
                    if not scanner.feed(piece):
                        break
            self._add_models(layer, [_renamed(f, path) for f in scanner.result()])
            return
        if size > self.model_bytes:
            self._add_models(layer, [ModelFinding(
                path, "not-checked", f"{size} bytes, above the {self.model_bytes} a scan checks")])
            return
        with tempfile.TemporaryFile(prefix="moorage-scan-") as tmp:
            tmp.write(first)
            written = len(first)
            for piece in rest:
                written += len(piece)
                if written > self.model_bytes:
                    break
                tmp.write(piece)
            tmp.seek(0)
            self._add_models(layer, models.check_model_file(tmp, path, written,
                                                            self.model_bytes))

    def _add_secrets(self, layer: str, found: list[SecretFinding]) -> None:
        for f in found:
            if len(self.secrets) >= MAX_FINDINGS:
                self.dropped += 1
                continue
            self.secrets.append(SecretFinding(f.path, f.rule, f.line, f.fingerprint, layer))

    def _add_models(self, layer: str, found: list[ModelFinding]) -> None:
        for f in found:
            if len(self.models) >= MAX_FINDINGS:
                self.dropped += 1
                continue
            self.models.append(ModelFinding(f.path, f.kind, f.detail, layer))


def _renamed(finding: ModelFinding, path: str) -> ModelFinding:
    return ModelFinding(path, finding.kind, finding.detail, finding.layer)


def _safetensors_like(head: bytes) -> bool:
    """Eight bytes of a plausible header length, then a JSON object."""
    return len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (
        models.SAFETENSORS_MAX_HEADER)
