"""Model-file safety: pickle imports, safetensors and GGUF headers, checked without loading.

Pickles are walked opcode by opcode with `pickletools`' opcode table (never unpickled): every
GLOBAL / INST / STACK_GLOBAL names a callable the pickle would import, and anything outside a
small allow-list of tensor and container types is a finding. Large opcode arguments are skipped
with `seek`, so memory stays bounded whatever the file's size.
"""

from __future__ import annotations

import json
import pickletools
import posixpath
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import IO

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
GGUF_SUFFIX = ".gguf"
SAFETENSORS_MAX_HEADER = 100 << 20
SAFETENSORS_HEAD = 8 + 64 * 1024  # what a streamed check keeps before it knows the length
GGUF_HEAD = 24
GGUF_MAGIC = b"GGUF"
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_STARTS = frozenset(b"\x80(c]}")  # PROTO, or what a protocol 0/1 pickle opens with
MAX_STRING = 64 * 1024  # longer string arguments are skipped, not read
MAX_FINDINGS = 20  # per file
MAX_ZIP_MEMBERS = 10_000
DTYPES = frozenset({"BOOL", "U8", "I8", "U16", "I16", "F16", "BF16", "U32", "I32", "F32", "U64",
                    "I64", "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2",
                    "F4", "C64"})
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
               "U16": 2, "I16": 2, "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4,
               "U64": 8, "I64": 8, "F64": 8, "C64": 8}

# Imports a model pickle may make. A module maps to the names allowed in it ("*": all).
ALLOWED: dict[str, frozenset[str]] = {
    "collections": frozenset({"OrderedDict", "defaultdict", "deque", "Counter"}),
    "builtins": frozenset({"set", "frozenset", "slice", "range", "complex", "bytearray",
                           "dict", "list", "tuple", "int", "float", "bool", "str", "bytes",
                           "object"}),
    "__builtin__": frozenset({"set", "frozenset", "slice", "complex", "bytearray", "object"}),
    "copyreg": frozenset({"_reconstructor"}),
    "copy_reg": frozenset({"_reconstructor"}),
    "_codecs": frozenset({"encode"}),
    "datetime": frozenset({"datetime", "date", "time", "timedelta", "timezone"}),
    "argparse": frozenset({"Namespace"}),
    "numpy": frozenset({"ndarray", "dtype", "float32", "float64", "int64", "int32", "bool_",
                        "uint8", "float16"}),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy.core.numeric": frozenset({"_frombuffer"}),
    "numpy._core.numeric": frozenset({"_frombuffer"}),
    "torch.serialization": frozenset({"_get_layout"}),
    "joblib.numpy_pickle": frozenset({"NumpyArrayWrapper", "NDArrayWrapper"}),
}
# Module prefixes whose every name is a tensor type, storage or rebuild helper.
ALLOWED_PREFIXES = ("torch._utils", "torch._tensor", "torch.nn.", "torch.storage",
                    "numpy.dtypes", "sklearn.")
TORCH_SAFE = frozenset({"Size", "device", "dtype", "float32", "float16", "bfloat16", "int64",
                        "FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage",
                        "LongStorage", "IntStorage", "ShortStorage", "CharStorage",
                        "ByteStorage", "BoolStorage", "UntypedStorage", "TypedStorage",
                        "_utils", "Tensor", "nn"})
# Modules that mean code execution, file or network access outright.
DANGEROUS_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "socket", "shutil", "runpy", "pty", "commands",
    "webbrowser", "importlib", "pickle", "_pickle", "marshal", "ctypes", "code", "codeop",
    "asyncio", "multiprocessing", "requests", "urllib", "http", "ftplib", "telnetlib",
    "smtplib", "pdb", "bdb", "platform", "signal", "tempfile", "glob", "pathlib", "io",
    "zipimport", "types", "operator", "functools", "inspect",
})
DANGEROUS_BUILTINS = frozenset({"eval", "exec", "execfile", "compile", "__import__", "getattr",
                                "setattr", "delattr", "open", "input", "breakpoint", "globals",
                                "locals", "vars", "apply", "file", "reload", "memoryview"})


@dataclass(frozen=True, slots=True)
class ModelFinding:
    """Something unsafe or malformed in a model file: kind and a one-line detail."""

    path: str
    kind: str  # dangerous-import | unknown-import | malformed-pickle | bad-safetensors | …
    detail: str
    layer: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready values."""
        return asdict(self)


def kind_of(path: str) -> str | None:
    """`pickle`, `safetensors` or `gguf` by the file's name (None: not a model file)."""
    name = path.lower()
    if name.endswith(SAFETENSORS_SUFFIX):
        return "safetensors"
    if name.endswith(GGUF_SUFFIX):
        return "gguf"
    if name.endswith(PICKLE_SUFFIXES):
        return "pickle"
    return None


def classify_import(module: str, name: str) -> str | None:
    """None for an allowed import, else `dangerous-import` or `unknown-import`."""
    top = module.split(".", 1)[0]
    if top in DANGEROUS_MODULES:
        return "dangerous-import"
    if module in ("builtins", "__builtin__") and name in DANGEROUS_BUILTINS:
        return "dangerous-import"
    if name in ALLOWED.get(module, ()):
        return None
    if module.startswith(ALLOWED_PREFIXES) or (module == "torch" and (
            name in TORCH_SAFE or name.endswith("Storage"))):
        return None
    if module in ("builtins", "__builtin__"):
        return "dangerous-import"  # any other builtin reaches too far (e.g. `type`)
    return "unknown-import"


# -- pickles ----------------------------------------------------------------------------------

_LENGTH_PREFIX = {pickletools.TAKEN_FROM_ARGUMENT1: ("<B", 1),
                  pickletools.TAKEN_FROM_ARGUMENT4: ("<i", 4),
                  pickletools.TAKEN_FROM_ARGUMENT4U: ("<I", 4),
                  pickletools.TAKEN_FROM_ARGUMENT8U: ("<Q", 8)}
_STRINGS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINSTRING",
                      "BINSTRING", "UNICODE", "STRING"})
_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}


class _Malformed(Exception):
    pass


def _read_line(f: IO[bytes]) -> bytes:
    """A newline-terminated argument; of a long one only the first MAX_STRING bytes."""
    line = f.readline(MAX_STRING)
    rest = line
    while rest and not rest.endswith(b"\n"):
        rest = f.readline(MAX_STRING)
    if not rest.endswith(b"\n"):
        raise _Malformed("the pickle ends inside a newline-terminated argument")
    return line.rstrip(b"\n")


def _ops(f: IO[bytes], end: int) -> Iterator[tuple[str, object]]:
    """(opcode name, its argument: the string for string opcodes and GLOBAL pairs, the index
    for memo opcodes, else None) for each opcode up to STOP."""
    while True:
        code = f.read(1)
        if not code:
            raise _Malformed("the pickle ends before its STOP opcode")
        op = _OPCODES.get(code)
        if op is None:
            raise _Malformed(f"unknown opcode 0x{code[0]:02x}")
        arg: object = None
        desc = op.arg
        if desc is not None:
            n = desc.n
            if op.name in ("GLOBAL", "INST"):
                arg = (_read_line(f).decode("utf-8", "replace"),
                       _read_line(f).decode("utf-8", "replace"))
            elif n == pickletools.UP_TO_NEWLINE:
                line = _read_line(f)
                arg = line.decode("utf-8", "replace").strip("'\"")
                if op.name in ("GET", "PUT"):
                    arg = int(line) if line.strip().isdigit() else None
            elif n in _LENGTH_PREFIX:
                fmt, width = _LENGTH_PREFIX[n]
                raw = f.read(width)
                if len(raw) < width:
                    raise _Malformed("the pickle ends inside an argument")
                (length,) = struct.unpack(fmt, raw)
                if length < 0:
                    raise _Malformed("negative argument length")
                if op.name in _STRINGS and length <= MAX_STRING:
                    data = f.read(length)
                    if len(data) < length:
                        raise _Malformed("the pickle ends inside an argument")
                    arg = data.decode("utf-8", "replace")
                else:
                    if f.tell() + length > end:
                        raise _Malformed("the pickle ends inside an argument")
                    f.seek(length, 1)
            elif n >= 0:
                data = f.read(n)
                if len(data) < n:
                    raise _Malformed("the pickle ends inside an argument")
                if op.name in ("BINGET", "BINPUT"):
                    arg = data[0]
                elif op.name in ("LONG_BINGET", "LONG_BINPUT"):
                    arg = struct.unpack("<I", data)[0]
        yield op.name, arg
        if op.name == "STOP":
            return


def _end_of(f: IO[bytes]) -> int:
    here = f.tell()
    end = f.seek(0, 2)
    f.seek(here)
    return end


def check_pickle(f: IO[bytes], path: str) -> list[ModelFinding]:
    """The imports of every pickle in the (seekable) stream `f` outside the allow-list; a
    stream that is no pickle at all gives nothing, a broken one a `malformed-pickle`."""
    end = _end_of(f)
    start = f.tell()
    head = f.read(1)
    f.seek(start)
    if not head or head[0] not in PICKLE_STARTS:
        return []
    found: list[ModelFinding] = []
    seen: set[str] = set()
    try:
        while f.tell() < end and len(found) < MAX_FINDINGS:
            memo: dict[int, object] = {}
            recent: list[object] = []  # the last values pushed (strings or None)
            for name, arg in _ops(f, end):
                target: tuple[str, str] | None = None
                if name in ("GLOBAL", "INST"):
                    target = arg  # type: ignore[assignment]
                elif name == "STACK_GLOBAL":
                    if len(recent) >= 2 and all(isinstance(x, str) for x in recent[-2:]):
                        target = (str(recent[-2]), str(recent[-1]))
                    else:
                        target = ("?", "?")
                if name in _STRINGS:
                    recent.append(arg)
                elif name in ("BINGET", "LONG_BINGET", "GET"):
                    recent.append(memo.get(arg) if isinstance(arg, int) else None)
                elif name in ("BINPUT", "LONG_BINPUT", "PUT") and isinstance(arg, int):
                    memo[arg] = recent[-1] if recent else None
                elif name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif name not in ("FRAME", "PROTO", "MARK"):
                    recent.append(None)
                del recent[:-2]
                if target is not None:
                    module, attr = target
                    verdict = ("unknown-import" if target == ("?", "?")
                               else classify_import(module, attr))
                    label = f"{module}.{attr}" if target != ("?", "?") else (
                        "an import whose name is computed")
                    if verdict and label not in seen:
                        seen.add(label)
                        found.append(ModelFinding(path, verdict, f"imports {label}"))
            rest = f.read(1)
            if not rest or rest[0] not in PICKLE_STARTS:
                break  # what follows the pickle is data (e.g. a legacy torch file's storages)
            f.seek(-1, 1)
    except _Malformed as exc:
        found.append(ModelFinding(path, "malformed-pickle", str(exc)))
    except (ValueError, struct.error, OverflowError) as exc:
        found.append(ModelFinding(path, "malformed-pickle", type(exc).__name__))
    return found


def check_zip(f: IO[bytes], path: str, max_member: int) -> list[ModelFinding]:
    """A zip-based torch file: the pickle members (`…/data.pkl`, any `.pkl`) are checked."""
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return [ModelFinding(path, "malformed-archive", f"not a readable zip: {exc}")]
    found: list[ModelFinding] = []
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            return [ModelFinding(path, "malformed-archive",
                                 f"more than {MAX_ZIP_MEMBERS} zip members")]
        for info in members:
            if not info.filename.endswith(".pkl"):
                continue
            where = f"{path}!{info.filename}"
            if info.file_size > max_member:
                found.append(ModelFinding(where, "not-checked",
                                          f"pickle member of {info.file_size} bytes"))
                continue
            try:
                with archive.open(info) as member:
                    found += check_pickle(member, where)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
                found.append(ModelFinding(where, "malformed-archive", str(exc)[:200]))
    return found


def check_model_file(f: IO[bytes], path: str, size: int, max_member: int) -> list[ModelFinding]:
    """Whatever `f` (a seekable file named `path`) holds: a zip, a pickle, safetensors, GGUF."""
    head = f.read(SAFETENSORS_HEAD)
    f.seek(0)
    kind = kind_of(path)
    if head.startswith(ZIP_MAGIC):
        return check_zip(f, path, max_member)
    if head.startswith(GGUF_MAGIC) or kind == "gguf":
        return check_gguf(head, path)
    if kind == "safetensors":
        return check_safetensors_file(f, path, size)
    return check_pickle(f, path)


# -- safetensors and GGUF ---------------------------------------------------------------------

def check_safetensors_header(header: bytes, path: str, size: int) -> list[ModelFinding]:
    """The JSON header of a safetensors file of `size` bytes: dtypes known, every tensor's
    offsets within the data and no two overlapping."""
    def bad(detail: str) -> list[ModelFinding]:
        return [ModelFinding(path, "bad-safetensors", detail)]

    try:
        doc = json.loads(header)
    except (ValueError, UnicodeDecodeError):
        return bad("the header is not JSON")
    if not isinstance(doc, dict):
        return bad("the header is not a JSON object")
    data_size = size - 8 - len(header)
    spans: list[tuple[int, int, str]] = []
    for name, info in doc.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return bad("__metadata__ is not a map of strings")
            continue
        if not isinstance(info, dict):
            return bad(f"tensor {name[:80]!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPES:
            return bad(f"tensor {name[:80]!r} has an unknown dtype {str(dtype)[:20]!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            return bad(f"tensor {name[:80]!r} has a malformed shape")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets) and 0 <= offsets[0] <= offsets[1]):
            return bad(f"tensor {name[:80]!r} has malformed data_offsets")
        if offsets[1] > data_size:
            return bad(f"tensor {name[:80]!r} ends at {offsets[1]}, past the data "
                       f"({data_size} bytes)")
        width = DTYPE_BYTES.get(str(dtype))
        if width is not None:
            count = 1
            for d in shape:
                count *= d
            if count * width != offsets[1] - offsets[0]:
                return bad(f"tensor {name[:80]!r}: shape and dtype need {count * width} "
                           f"bytes, data_offsets give {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    reach, last = 0, ""
    for start, stop, name in spans:
        if start < reach:
            return bad(f"tensors {last[:80]!r} and {name[:80]!r} overlap")
        if stop > reach:
            reach, last = stop, name
    return []


def safetensors_length(head: bytes, path: str) -> int | list[ModelFinding]:
    """The header length a safetensors file declares, or the finding that it is bad."""
    if len(head) < 8:
        return [ModelFinding(path, "bad-safetensors", "shorter than its 8-byte header length")]
    (length,) = struct.unpack("<Q", head[:8])
    if length > SAFETENSORS_MAX_HEADER:
        return [ModelFinding(path, "bad-safetensors",
                             f"header length {length} is above {SAFETENSORS_MAX_HEADER}")]
    return int(length)


def check_safetensors_file(f: IO[bytes], path: str, size: int) -> list[ModelFinding]:
    """A whole safetensors file, read from a seekable stream."""
    length = safetensors_length(f.read(8), path)
    if isinstance(length, list):
        return length
    if 8 + length > size:
        return [ModelFinding(path, "bad-safetensors", f"header length {length} exceeds the file")]
    return check_safetensors_header(f.read(length), path, size)


def check_gguf(head: bytes, path: str) -> list[ModelFinding]:
    """The GGUF magic, version and header counts (from the file's first 24 bytes)."""
    def bad(detail: str) -> list[ModelFinding]:
        return [ModelFinding(path, "bad-gguf", detail)]

    if not head.startswith(GGUF_MAGIC):
        return bad("no GGUF magic")
    if len(head) < GGUF_HEAD:
        return bad("shorter than a GGUF header")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (1, 2, 3):
        return bad(f"unknown GGUF version {version}")
    tensors, kvs = struct.unpack("<QQ", head[8:24])
    if tensors > 1 << 24 or kvs > 1 << 20:
        return bad(f"implausible header counts ({tensors} tensors, {kvs} metadata keys)")
    return []


class HeadScanner:
    """A layer reader Scanner for safetensors / GGUF members: keeps only the header."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self.kind = kind_of(path)
        self._buf = bytearray()
        self._need = GGUF_HEAD if self.kind == "gguf" else 8
        self._sized = False

    def feed(self, data: bytes) -> bool:
        """Take the next piece; False once the header is in (or known bad)."""
        while data:
            take = self._need - len(self._buf)
            if take <= 0:
                return False
            self._buf += data[:take]
            data = data[take:]
            if self.kind == "safetensors" and not self._sized and len(self._buf) == 8:
                self._sized = True
                length = safetensors_length(bytes(self._buf), self.path)
                if isinstance(length, list) or 8 + length > self.size:
                    return False
                self._need = 8 + length
        return len(self._buf) < self._need

    def result(self) -> list[ModelFinding]:
        """The findings of the header seen."""
        head = bytes(self._buf)
        if self.kind == "gguf":
            return check_gguf(head, self.path)
        length = safetensors_length(head, self.path)
        if isinstance(length, list):
            return length
        if 8 + length > self.size or len(head) < 8 + length:
            return [ModelFinding(self.path, "bad-safetensors",
                                 f"header length {length} exceeds the file")]
        return check_safetensors_header(head[8:8 + length], self.path, self.size)


def display_name(path: str) -> str:
    """The file name shown for a raw model layer."""
    return posixpath.basename(path) or path
