"""Package catalogers on real-format files: dpkg status (with Source:) and distroless
status.d, apk installed, Python dist-info / egg-info, nested node_modules, os-release →
OSV ecosystem; and purls."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from moorage.scan import catalog
from moorage.scan.catalog import OsInfo, Package, apk, dpkg, npm, osrelease, python

DPKG_STATUS = b"""\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1~deb12u2)
Version: 3.0.13-1~deb12u1
Description: Secure Sockets Layer toolkit

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
"""

APK_INSTALLED = b"""\
C:Q1abc=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
o:musl
L:MIT
F:lib
R:ld-musl-x86_64.so.1

C:Q1def=
P:libcrypto3
V:3.1.4-r5
A:x86_64
o:openssl
L:Apache-2.0
"""

METADATA = b"""\
Metadata-Version: 2.1
Name: Typing_Extensions
Version: 4.9.0
Summary: Backported and Experimental Type Hints
Requires-Dist: foo

Name: not-a-header
Version: 0
"""


def test_dpkg_status_lists_installed_packages_with_their_source() -> None:
    found = dpkg.parse(dpkg.STATUS, DPKG_STATUS)
    assert [(p.name, p.version, p.arch, p.source_name, p.source_version) for p in found] == [
        ("libc6", "2.36-9+deb12u4", "amd64", "glibc", "2.36-9+deb12u4"),
        ("libssl3", "3.0.13-1~deb12u1", "amd64", "openssl", "3.0.11-1~deb12u2"),
        ("tzdata", "2024a-0+deb12u1", "all", "tzdata", "2024a-0+deb12u1"),
    ]


def test_distroless_status_d_files_are_catalogued_but_not_their_md5sums() -> None:
    assert dpkg.matches("var/lib/dpkg/status.d/libc6")
    assert not dpkg.matches("var/lib/dpkg/status.d/libc6.md5sums")
    assert not dpkg.matches("var/lib/dpkg/status.d/")
    assert not dpkg.matches("var/lib/dpkg/status-old")
    (pkg,) = dpkg.parse("var/lib/dpkg/status.d/base", b"Package: base-files\nVersion: 12.4\n"
                        b"Architecture: amd64\nSource: base-files\n")
    assert (pkg.name, pkg.version, pkg.source_name) == ("base-files", "12.4", "base-files")


def test_apk_installed_lists_packages_with_their_origin() -> None:
    assert apk.matches("lib/apk/db/installed")
    found = apk.parse(apk.INSTALLED, APK_INSTALLED)
    assert [(p.name, p.version, p.arch, p.source_name) for p in found] == [
        ("musl", "1.2.4_git20230717-r4", "x86_64", "musl"),
        ("libcrypto3", "3.1.4-r5", "x86_64", "openssl"),
    ]


def test_dist_info_and_egg_info_metadata_headers() -> None:
    path = "usr/lib/python3/site-packages/typing_extensions-4.9.0.dist-info/METADATA"
    assert python.matches(path)
    assert python.matches("app/foo.egg-info/PKG-INFO")
    assert python.matches("usr/lib/python3/dist-packages/six-1.16.0.egg-info")
    assert not python.matches("home/user/notes.egg-info")
    assert not python.matches("app/METADATA")
    assert not python.matches("x.dist-info/RECORD")
    (pkg,) = python.parse(path, METADATA)
    assert (pkg.name, pkg.version, pkg.type) == ("Typing_Extensions", "4.9.0", "pypi")
    assert catalog.purl(pkg, None) == "pkg:pypi/typing-extensions@4.9.0"


def test_node_modules_package_json_nested_and_scoped() -> None:
    paths = {
        "app/node_modules/lodash/package.json": True,
        "app/node_modules/@babel/core/package.json": True,
        "app/node_modules/a/node_modules/b/package.json": True,
        "app/node_modules/lodash/test/fixtures/package.json": False,
        "app/node_modules/@babel/package.json": False,
        "app/node_modules/.bin/package.json": False,
        "app/package.json": False,
    }
    assert {p: npm.matches(p) for p in paths} == paths
    (pkg,) = npm.parse("app/node_modules/@babel/core/package.json",
                       json.dumps({"name": "@babel/core", "version": "7.23.0"}).encode())
    assert catalog.purl(pkg, None) == "pkg:npm/%40babel/core@7.23.0"
    assert npm.parse("x/node_modules/y/package.json", b"{not json") == []
    assert npm.parse("x/node_modules/y/package.json", b'{"name": "y"}') == []


@pytest.mark.parametrize(("text", "ecosystem"), [
    (b'ID=debian\nVERSION_ID="12"\nVERSION="12 (bookworm)"\n', "Debian:12"),
    (b"ID=alpine\nVERSION_ID=3.19.1\n", "Alpine:v3.19"),
    (b'ID=ubuntu\nVERSION_ID="22.04"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\n',
     "Ubuntu:22.04:LTS"),
    (b'ID=ubuntu\nVERSION_ID="23.10"\nVERSION="23.10 (Mantic Minotaur)"\n', "Ubuntu:23.10"),
    (b'ID="rocky"\nVERSION_ID="9.3"\n', "Rocky Linux:9"),
    (b"ID=wolfi\nVERSION_ID=20230201\n", "Wolfi"),
    (b"ID=plan9\nVERSION_ID=4\n", None),
])
def test_os_release_names_the_osv_ecosystem(text: bytes, ecosystem: str | None) -> None:
    info = osrelease.parse("etc/os-release", text)
    assert info is not None and info.ecosystem == ecosystem


def test_os_packages_get_distro_qualified_purls() -> None:
    debian = OsInfo(id="debian", version_id="12", ecosystem="Debian:12")
    pkg = Package(name="libssl3", version="1:3.0.13-1~deb12u1", type="deb", arch="amd64",
                  source_name="openssl")
    assert catalog.purl(pkg, debian) == (
        "pkg:deb/debian/libssl3@1%3A3.0.13-1~deb12u1?arch=amd64&distro=debian-12"
        "&upstream=openssl")
    alpine = OsInfo(id="alpine", version_id="3.19.1")
    musl = Package(name="musl", version="1.2.4-r4", type="apk", arch="x86_64",
                   source_name="musl")
    assert catalog.purl(musl, alpine) == (
        "pkg:apk/alpine/musl@1.2.4-r4?arch=x86_64&distro=alpine-3.19.1")


def test_an_image_catalogue_is_the_final_filesystem_and_its_sbom_has_the_required_fields(
) -> None:
    import re

    from moorage.scan.image import catalogue
    from moorage.scan.layers import Limits
    from moorage.scan.sbom import LAYER, SOURCE_NAME, document

    from .layers_fixture import gz, tar_bytes, zst

    site = "usr/lib/python3/site-packages"
    lower = gz(tar_bytes({"etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
                          "var/lib/dpkg/status": DPKG_STATUS,
                          f"{site}/old-1.0.dist-info/METADATA": b"Name: old\nVersion: 1.0\n"}))
    upper = zst(tar_bytes({f"{site}/.wh.old-1.0.dist-info": None,
                           f"{site}/new-2.0.dist-info/METADATA": b"Name: new\nVersion: 2.0\n"}))
    blobs = {"sha256:" + "1" * 64: lower, "sha256:" + "2" * 64: upper}
    layers = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d}
              for d in blobs]
    found = catalogue(layers, lambda d: [blobs[d]], Limits())
    assert found.os is not None and found.os.ecosystem == "Debian:12"
    assert [(p.name, p.layer[-1]) for p in found.packages] == [
        ("new", "2"), ("libc6", "1"), ("libssl3", "1"), ("tzdata", "1")]
    doc = document("team/app", "sha256:" + "a" * 64, found, 1_700_000_000)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.5"
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", doc["serialNumber"])
    assert doc["version"] == 1
    assert doc["metadata"]["component"]["type"] == "container"
    assert doc["metadata"]["component"]["version"] == "sha256:" + "a" * 64
    assert [c["type"] for c in doc["components"]] == ["operating-system", *["library"] * 4]
    libssl = next(c for c in doc["components"] if c["name"] == "libssl3")
    assert libssl["purl"] == ("pkg:deb/debian/libssl3@3.0.13-1~deb12u1?arch=amd64"
                              "&distro=debian-12&upstream=openssl")
    props = {p["name"]: p["value"] for p in libssl["properties"]}
    assert props[LAYER] == "sha256:" + "1" * 64 and props[SOURCE_NAME] == "openssl"
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(set(refs)) == len(refs)


def _rpm_header(tags: dict[int, str | int]) -> bytes:
    """An rpm header blob (index entries over a data store), as rpmdb.sqlite rows hold."""
    import struct

    index, store = b"", b""
    for tag, value in tags.items():
        if isinstance(value, int):
            store += b"\0" * (-len(store) % 4)
            index += struct.pack(">IIII", tag, 4, len(store), 1)
            store += struct.pack(">I", value)
        else:
            index += struct.pack(">IIII", tag, 6, len(store), 1)
            store += value.encode() + b"\0"
    return struct.pack(">II", len(tags), len(store)) + index + store


def test_the_sqlite_rpmdb_is_spooled_to_a_temporary_file_read_and_deleted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from moorage.scan.catalog import rpm
    from moorage.scan.layers import Budget, Entry, Limits, Spool, iter_layer

    from .layers_fixture import chunks, gz, tar_bytes

    db_path = tmp_path / "rpmdb.sqlite"
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "blob BLOB NOT NULL)")
        for tags in (
            {rpm.NAME: "openssl-libs", rpm.VERSION: "3.0.7", rpm.RELEASE: "24.el9",
             rpm.EPOCH: 1, rpm.ARCH: "x86_64", rpm.SOURCERPM: "openssl-3.0.7-24.el9.src.rpm"},
            {rpm.NAME: "gpg-pubkey", rpm.VERSION: "fd431d51", rpm.RELEASE: "4ae0493b"},
            {rpm.NAME: "bash", rpm.VERSION: "5.1.8", rpm.RELEASE: "6.el9", rpm.ARCH: "x86_64",
             rpm.SOURCERPM: "bash-5.1.8-6.el9.src.rpm"},
        ):
            db.execute("INSERT INTO Packages (blob) VALUES (?)", (_rpm_header(tags),))
    db.close()
    layer = gz(tar_bytes({"var/lib/rpm/rpmdb.sqlite": db_path.read_bytes()}))
    assert catalog.wants(Entry("var/lib/rpm/rpmdb.sqlite", "file", 1)) == Spool(rpm.SPOOL_BYTES)
    seen = []
    for entry, data in iter_layer(chunks(layer), Budget(Limits()), catalog.wants):
        found = catalog.parse(entry.path, data)  # type: ignore[arg-type]
        seen.append((found, data.path))  # type: ignore[union-attr]
    ((found, spooled),) = seen
    assert not os.path.exists(spooled)  # deleted once the reader moved on
    assert isinstance(found, list)
    assert [(p.name, p.version, p.epoch, p.arch, p.source_name, p.source_version)
            for p in found] == [
        ("openssl-libs", "3.0.7-24.el9", "1", "x86_64", "openssl", "3.0.7-24.el9"),
        ("bash", "5.1.8-6.el9", "", "x86_64", "bash", "5.1.8-6.el9")]
    rhel = OsInfo(id="rhel", version_id="9.3")
    assert catalog.purl(found[0], rhel) == (
        "pkg:rpm/redhat/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rhel-9.3&epoch=1"
        "&upstream=openssl")


def _uvarint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _go_binary(version: str, modinfo: str, size: int = 300_000) -> bytes:
    """An ELF file with a Go 1.18+ build info blob (inline strings) in the middle."""
    marker = b"\x30" * 16
    info = marker + modinfo.encode() + marker
    blob = (b"\xff Go buildinf:" + bytes([8, 2]) + b"\0" * 16
            + _uvarint(len(version)) + version.encode() + _uvarint(len(info)) + info)
    head = b"\x7fELF" + b"\0" * 200_000
    return head + blob + b"\0" * max(0, size - len(head) - len(blob))


def test_go_build_info_is_found_in_a_streamed_executable() -> None:
    from moorage.scan.image import catalogue
    from moorage.scan.layers import Limits

    from .layers_fixture import gz

    modinfo = ("path\texample.com/app/cmd/app\nmod\texample.com/app\t(devel)\t\n"
               "dep\tgolang.org/x/net\tv0.17.0\th1:abc=\n"
               "dep\tgithub.com/old/dep\tv1.0.0\t\n=>\tgithub.com/new/dep\tv1.2.0\th1:def=\n"
               "build\t-compiler=gc\n")
    binary = _go_binary("go1.21.5", modinfo + "\n")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, mode, data in (("usr/local/bin/app", 0o755, binary),
                                 ("usr/share/app.dat", 0o644, binary),  # not executable
                                 ("usr/local/bin/sh", 0o755, b"#!" + bytes(70_000))):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    layer = gz(out.getvalue())
    found = catalogue([{"mediaType": "x.tar+gzip", "digest": "sha256:" + "3" * 64}],
                      lambda d: [layer], Limits())
    assert [(p.name, p.version, p.path, p.source_name) for p in found.packages] == [
        ("stdlib", "1.21.5", "usr/local/bin/app", ""),
        ("example.com/app", "(devel)", "usr/local/bin/app", ""),
        ("golang.org/x/net", "v0.17.0", "usr/local/bin/app", ""),
        ("github.com/new/dep", "v1.2.0", "usr/local/bin/app", "github.com/old/dep")]
    assert found.packages[2].purl == "pkg:golang/golang.org/x/net@v0.17.0"


def _jar(entries: dict[str, bytes]) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_pom_properties_in_jars_and_nested_jars() -> None:
    from moorage.scan.image import catalogue
    from moorage.scan.layers import Limits

    from .layers_fixture import gz, tar_bytes

    pom = b"#Generated by Maven\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\n" \
          b"version=2.14.1\n"
    inner = _jar({"META-INF/maven/com.google.guava/guava/pom.properties":
                  b"groupId=com.google.guava\nartifactId=guava\nversion=32.1.2-jre\n"})
    app = _jar({"META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties": pom,
                "BOOT-INF/lib/guava.jar": inner, "META-INF/MANIFEST.MF": b"x"})
    layer = gz(tar_bytes({"app/app.jar": app, "app/broken.jar": b"not a zip"}))
    found = catalogue([{"mediaType": "x.tar+gzip", "digest": "sha256:" + "4" * 64}],
                      lambda d: [layer], Limits())
    assert [(p.purl, p.path) for p in found.packages] == [
        ("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "app/app.jar"),
        ("pkg:maven/com.google.guava/guava@32.1.2-jre", "app/app.jar!/BOOT-INF/lib/guava.jar")]
