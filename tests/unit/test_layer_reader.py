"""The streaming layer reader: tar, tar+gzip and tar+zstd by magic bytes, the scan limits,
hostile names, the member cap, whiteouts across layers, and flat memory on a large layer."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tracemalloc
from collections.abc import Iterator

import pytest

from moorage.scan.layers import (
    Budget,
    Filesystem,
    LayerError,
    Limits,
    ScanLimitExceeded,
    iter_layer,
    normalise,
    stack_layer,
)

from .layers_fixture import chunks, gz, tar_bytes, zst

FILES = {"etc/os-release": b"ID=debian\n", "usr/share/doc/a.txt": b"x" * 3000,
         "./var/lib/dpkg/status": b"Package: a\n"}


def _read(data: bytes, want=lambda p: True, limits: Limits | None = None):  # type: ignore[no-untyped-def]
    return list(iter_layer(chunks(data), Budget(limits or Limits()), want))


@pytest.mark.parametrize("pack", [lambda b: b, gz, zst], ids=["tar", "gzip", "zstd"])
def test_each_format_is_read_by_its_magic_bytes(pack) -> None:  # type: ignore[no-untyped-def]
    entries = _read(pack(tar_bytes(FILES)))
    assert {e.path: d for e, d in entries} == {
        "etc/os-release": b"ID=debian\n", "usr/share/doc/a.txt": b"x" * 3000,
        "var/lib/dpkg/status": b"Package: a\n"}


def test_only_wanted_members_are_read() -> None:
    entries = _read(gz(tar_bytes(FILES)), want=lambda e: e.path == "etc/os-release")
    assert [(e.path, d) for e, d in entries] == [
        ("etc/os-release", b"ID=debian\n"), ("usr/share/doc/a.txt", None),
        ("var/lib/dpkg/status", None)]


def test_concatenated_gzip_members_are_one_stream() -> None:
    tar = tar_bytes(FILES)
    data = gzip.compress(tar[:1024]) + gzip.compress(tar[1024:])
    assert len(_read(data)) == 3


def test_something_that_is_not_a_tar_is_refused() -> None:
    with pytest.raises(LayerError, match="unknown magic"):
        _read(b"PK\x03\x04" + os.urandom(2000))


def test_a_truncated_layer_is_an_error_not_a_short_listing() -> None:
    tar = tar_bytes({"big": os.urandom(5000)})
    with pytest.raises(LayerError, match="ends inside"):
        _read(tar[:2048])
    with pytest.raises(LayerError):
        _read(gz(tar)[:1500])


def test_too_many_entries_ends_the_scan() -> None:
    data = tar_bytes({f"f{i}": b"" for i in range(20)})
    with pytest.raises(ScanLimitExceeded, match="scan_max_entries"):
        _read(data, limits=Limits(max_entries=10))
    assert len(_read(data, limits=Limits(max_entries=20))) == 20


def test_too_many_decompressed_bytes_ends_the_scan() -> None:
    data = gz(tar_bytes({"a": os.urandom(300_000)}))
    with pytest.raises(ScanLimitExceeded, match="scan_max_bytes"):
        _read(data, limits=Limits(max_bytes=100_000))


def test_the_byte_budget_is_shared_by_the_layers_of_one_scan() -> None:
    budget = Budget(Limits(max_bytes=500_000))
    layer = tar_bytes({"a": os.urandom(300_000)})
    list(iter_layer(chunks(layer), budget, lambda p: False))
    with pytest.raises(ScanLimitExceeded):
        list(iter_layer(chunks(layer), budget, lambda p: False))


def test_a_compression_bomb_ends_the_scan() -> None:
    bomb = gz(tar_bytes({"zeros": bytes(64 << 20)}))  # ~1000:1
    with pytest.raises(ScanLimitExceeded, match="scan_max_ratio"):
        _read(bomb, want=lambda p: False)
    assert len(_read(bomb, want=lambda p: False, limits=Limits(max_ratio=5000))) == 1


@pytest.mark.parametrize(("name", "expected"), [
    ("/etc/passwd", "etc/passwd"), ("../../etc/shadow", "etc/shadow"),
    ("./a/./b/../c", "a/c"), ("a/../../../x", "x"), ("//usr//lib/", "usr/lib"),
])
def test_hostile_names_become_paths_inside_the_root(name: str, expected: str) -> None:
    assert normalise(name) == expected


def test_hostile_names_in_a_layer_are_normalised_and_never_opened(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tar_bytes({"/abs/file": b"1", "../../escape": b"2"},
                     symlinks={"etc/link": "/etc/shadow", "../up": "../../.."})
    entries = _read(data)
    assert [(e.path, e.kind) for e, _ in entries] == [
        ("abs/file", "file"), ("escape", "file"), ("etc/link", "symlink"), ("up", "symlink")]
    assert os.listdir(tmp_path) == []


def test_a_member_larger_than_the_cap_is_skipped_not_read() -> None:
    data = tar_bytes({"big/METADATA": os.urandom(70_000), "small": b"ok"})
    entries = _read(data, limits=Limits(member_cap=65_536))
    assert [(e.path, e.size, d) for e, d in entries] == [
        ("big/METADATA", 70_000, None), ("small", 2, b"ok")]


def test_a_huge_declared_size_streams_to_the_end_and_fails() -> None:
    header = tarfile.TarInfo("huge")
    header.size = 1 << 40  # a terabyte the stream does not have
    block = header.tobuf(tarfile.GNU_FORMAT)
    with pytest.raises(LayerError):
        _read(block + b"\0" * 4096)


def test_a_huge_pax_header_is_refused_before_it_is_read() -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 512 << 20
    with pytest.raises(LayerError, match="extension header"):
        _read(info.tobuf(tarfile.USTAR_FORMAT) + b"\0" * 1024)


def test_long_names_of_gnu_and_pax_tars() -> None:
    long = "d/" + "x" * 150 + "/METADATA"
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        (entry, data), = _read(tar_bytes({long: b"hi"}, fmt=fmt))
        assert (entry.path, data) == (long, b"hi")


def _stack(*layers: bytes) -> dict[str, object]:
    fs = Filesystem()
    budget = Budget(Limits())
    for i, layer in enumerate(layers):
        stack_layer(fs, iter_layer(chunks(layer), budget, lambda p: True),
                    lambda e, d, i=i: (i, d))
    return fs.files


def test_whiteouts_and_opaque_dirs_across_two_layers() -> None:
    lower = tar_bytes({"app/a": b"1", "app/sub/b": b"2", "keep/c": b"3", "gone/d": b"4",
                       "opq/old": b"5", "opq/deep/old2": b"6", "file": b"7"})
    upper = tar_bytes({"app/sub/.wh.b": None, ".wh.gone": None, "opq/.wh..wh..opq": None,
                       "opq/new": b"8", "keep/c": b"9"})
    assert _stack(lower, upper) == {
        "app/a": (0, b"1"), "keep/c": (1, b"9"), "opq/new": (1, b"8"), "file": (0, b"7")}


def test_an_opaque_dir_hides_only_lower_layers_whatever_the_member_order() -> None:
    lower = tar_bytes({"opq/old": b"1"})
    upper = tar_bytes({"opq/new": b"2", "opq/.wh..wh..opq": None})  # marker after the file
    assert _stack(lower, upper) == {"opq/new": (1, b"2")}


def test_a_file_or_symlink_replacing_a_directory_hides_what_was_under_it() -> None:
    lower = tar_bytes({"lib/x/METADATA": b"1", "etc/os-release": b"ID=a"})
    upper = tar_bytes({"lib/x": b"now a file"}, symlinks={"etc/os-release": "../usr/os"})
    assert _stack(lower, upper) == {"lib/x": (1, b"now a file")}


def _big_layer(path: str, size: int) -> None:
    """A tar of one `size`-byte member of mostly zeros plus a wanted file, written to disk."""
    with open(path, "wb") as out, tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("var/blob.bin")
        info.size = size

        class Zeros(io.RawIOBase):
            left = size

            def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
                n = min(len(b), self.left)
                b[:n] = bytes(n)
                if n:
                    b[0] = 1  # not all zeros: "sparse-ish"
                self.left -= n
                return n

        tar.addfile(info, Zeros())
        small = tarfile.TarInfo("etc/os-release")
        small.size = 10
        tar.addfile(small, io.BytesIO(b"ID=debian\n"))


def _file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "gzip"])
def test_a_200_mib_layer_streams_in_flat_memory(tmp_path, compress: bool) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "layer.tar")
    _big_layer(path, 200 << 20)
    if compress:
        with open(path, "rb") as src, gzip.open(path + ".gz", "wb", 1) as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        path += ".gz"
    tracemalloc.start()
    try:
        entries = list(iter_layer(_file_chunks(path), Budget(Limits(max_ratio=10_000)),
                                  lambda p: True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(e.path, d) for e, d in entries] == [("var/blob.bin", None),
                                                 ("etc/os-release", b"ID=debian\n")]
    assert peak < 32 << 20, f"peak {peak / 2**20:.1f} MiB"
