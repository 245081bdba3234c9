"""Model-file safety (scan/models.py): a malicious pickle is flagged without being run, a
harmless one passes, zip-based torch files have their data.pkl checked, safetensors headers
and the GGUF magic are validated."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest

from moorage.scan.models import (
    HeadScanner,
    check_gguf,
    check_model_file,
    check_pickle,
)


class _Payload:
    """What a booby-trapped model pickles: unpickling it would run `touch MARKER`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Tensor:
    """A tensor-like object pickled the way torch pickles storage references."""

    def __reduce__(self):
        return (collections.OrderedDict, ([("weight", [0.5] * 8), ("bias", b"\x00" * 64)],))


def _malicious(tmp_path: Path, protocol: int) -> tuple[bytes, Path]:
    marker = tmp_path / f"pwned-{protocol}"
    return pickle.dumps({"state_dict": _Payload(marker)}, protocol=protocol), marker


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_malicious_pickle_is_flagged_without_being_run(tmp_path: Path, protocol: int) -> None:
    data, marker = _malicious(tmp_path, protocol)
    found = check_model_file(io.BytesIO(data), "model.pkl", len(data), 1 << 20)
    assert [(f.kind, f.detail) for f in found] == [
        ("dangerous-import", f"imports {os.system.__module__}.system")]
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_harmless_pickle_passes(protocol: int) -> None:
    data = pickle.dumps(collections.OrderedDict(
        layer=_Tensor(), step=3, lr=1e-3, name="x" * 100_000, blob=b"\x01" * 200_000),
        protocol=protocol)
    assert check_pickle(io.BytesIO(data), "state.pt") == []


def test_a_truncated_pickle_is_malformed() -> None:
    data = pickle.dumps({"a": "b" * 1000}, protocol=4)[:-200]
    (finding,) = check_pickle(io.BytesIO(data), "broken.pkl")
    assert finding.kind == "malformed-pickle"


def _torch_zip(pickled: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/data/0", b"\0" * 4096)
        z.writestr("archive/version", b"3\n")
    return out.getvalue()


def test_a_zip_based_torch_file_has_its_data_pkl_checked(tmp_path: Path) -> None:
    data, marker = _malicious(tmp_path, 2)
    evil = _torch_zip(data)
    (finding,) = check_model_file(io.BytesIO(evil), "model.pt", len(evil), 1 << 20)
    assert (finding.path, finding.kind) == ("model.pt!archive/data.pkl", "dangerous-import")
    good = _torch_zip(pickle.dumps(collections.OrderedDict(w=_Tensor()), protocol=2))
    assert check_model_file(io.BytesIO(good), "model.pt", len(good), 1 << 20) == []
    assert not marker.exists()


def _safetensors(header: dict, data: bytes, length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


VALID = {"__metadata__": {"format": "pt"},
         "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
         "b": {"dtype": "BF16", "shape": [4], "data_offsets": [16, 24]}}


def _checked(blob: bytes) -> list[str]:
    whole = check_model_file(io.BytesIO(blob), "m.safetensors", len(blob), 1 << 20)
    streamed = HeadScanner("m.safetensors", len(blob))
    for i in range(0, len(blob), 5):
        if not streamed.feed(blob[i:i + 5]):
            break
    assert [f.detail for f in streamed.result()] == [f.detail for f in whole]
    return [f.detail for f in whole]


def test_a_valid_safetensors_header_passes() -> None:
    assert _checked(_safetensors(VALID, bytes(24))) == []


def test_corrupt_safetensors_headers_are_flagged() -> None:
    too_big = _checked(_safetensors(VALID, bytes(24), length=200 << 20))
    assert too_big == [f"header length {200 << 20} is above {100 << 20}"]
    overlapping = {**VALID, "b": {"dtype": "BF16", "shape": [4], "data_offsets": [8, 16]}}
    assert _checked(_safetensors(overlapping, bytes(24))) == ["tensors 'a' and 'b' overlap"]
    past_end = {"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}
    assert _checked(_safetensors(past_end, bytes(24))) == [
        "tensor 'a' ends at 32, past the data (24 bytes)"]
    unknown = {"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}
    assert _checked(_safetensors(unknown, bytes(1))) == ["tensor 'a' has an unknown dtype 'Q9'"]


def test_gguf_magic_and_version_are_checked() -> None:
    good = b"GGUF" + struct.pack("<IQQ", 3, 291, 24)
    assert check_gguf(good, "m.gguf") == []
    assert [f.detail for f in check_gguf(b"GGML" + good[4:], "m.gguf")] == ["no GGUF magic"]
    assert [f.detail for f in check_gguf(b"GGUF" + struct.pack("<IQQ", 9, 1, 1), "m.gguf")] == [
        "unknown GGUF version 9"]
    blob = b"GGUX" + bytes(100)
    assert [f.kind for f in check_model_file(io.BytesIO(blob), "m.gguf", 104, 1)] == ["bad-gguf"]


def test_a_torch_style_state_dict_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The imports a torch checkpoint makes (tensor rebuild helpers, storage types), pickled
    from stand-in modules: torch itself is not needed to write them."""
    import sys
    import types

    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        return args

    class FloatStorage:
        pass

    _rebuild_tensor_v2.__module__ = utils.__name__
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    FloatStorage.__module__ = torch.__name__
    FloatStorage.__qualname__ = "FloatStorage"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch.FloatStorage = FloatStorage
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Tensor:
        def __reduce__(self):
            return (_rebuild_tensor_v2, (FloatStorage, 0, (2, 2), (2, 1), False,
                                         collections.OrderedDict()))

    data = pickle.dumps(collections.OrderedDict(weight=Tensor(), bias=Tensor()), protocol=2)
    assert check_pickle(io.BytesIO(_torch_zip(data)), "x") == []  # a zip is not a pickle
    assert check_model_file(io.BytesIO(_torch_zip(data)), "model.pt", 10**6, 1 << 20) == []
    assert check_pickle(io.BytesIO(data), "model.pkl") == []
