"""Version ordering per ecosystem family: dpkg, rpm, apk, semver, PEP 440, Maven, RubyGems.

Written here rather than taken from `univers`: that library costs ~11 MiB and 200 ms at import
(attrs, semantic_version, semver) in a worker that must stay small, for rules that fit in a
page each. `compare(family, a, b)` returns -1, 0 or 1 and raises InvalidVersion for a version
the family cannot order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cmp_to_key
from typing import Any


class InvalidVersion(ValueError):
    """A version string the ecosystem's rules cannot order."""


# Base ecosystem (the part before ':' in OSV's `Debian:12`) -> family of version rules.
FAMILIES: dict[str, str] = {
    "Debian": "dpkg", "Ubuntu": "dpkg",
    "Alpine": "apk", "Wolfi": "apk", "Chainguard": "apk",
    "Red Hat": "rpm", "AlmaLinux": "rpm", "Rocky Linux": "rpm", "openSUSE": "rpm", "SUSE": "rpm",
    "Mageia": "rpm", "openEuler": "rpm", "Photon OS": "rpm", "Azure Linux": "rpm",
    "npm": "semver", "Go": "semver", "crates.io": "semver", "Packagist": "semver",
    "NuGet": "semver", "Hex": "semver", "Pub": "semver", "SwiftURL": "semver",
    "PyPI": "pep440",
    "Maven": "maven",
    "RubyGems": "gem",
}


def family_of(ecosystem: str) -> str | None:
    """The version family of an OSV ecosystem name (`Debian:12` → dpkg); None when unknown."""
    return FAMILIES.get(ecosystem.split(":", 1)[0])


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


# -- dpkg ---------------------------------------------------------------------------------------

_DPKG_RE = re.compile(r"(?:(\d+):)?([0-9A-Za-z.+~:-]*?)(?:-([0-9A-Za-z.+~]+))?")


def _dpkg_order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or revision."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _dpkg_order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _dpkg_order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return _sign(ac - bc)
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return _sign(first_diff)
    return 0


def parse_dpkg(version: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision) of a Debian version."""
    v = version.strip()
    m = _DPKG_RE.fullmatch(v)
    if not v or not m or not m.group(2) or not m.group(2)[0].isdigit():
        raise InvalidVersion(f"not a Debian version: {version!r}")
    return int(m.group(1) or 0), m.group(2), m.group(3) or ""


def compare_dpkg(a: str, b: str) -> int:
    """dpkg --compare-versions: epoch, then upstream, then revision (`~` before everything)."""
    ea, ua, ra = parse_dpkg(a)
    eb, ub, rb = parse_dpkg(b)
    if ea != eb:
        return _sign(ea - eb)
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


# -- rpm ----------------------------------------------------------------------------------------


def _ascii_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _rpmvercmp(a: str, b: str) -> int:
    """rpm's segment comparison, `~` (sorts before) and `^` (sorts after the base) included."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not _ascii_alnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < len(b) and not _ascii_alnum(b[j]) and b[j] not in "~^":
            j += 1
        ca, cb = a[i:i + 1], b[j:j + 1]
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (ca and cb):
            break
        numeric = ca.isdigit()
        pick = str.isdigit if numeric else str.isalpha
        si, sj = i, j
        while i < len(a) and a[i].isascii() and pick(a[i]):
            i += 1
        while j < len(b) and b[j].isascii() and pick(b[j]):
            j += 1
        sa, sb = a[si:i], b[sj:j]
        if not sb:  # segments of different kinds: the numeric one is newer
            return 1 if numeric else -1
        if numeric:
            sa, sb = sa.lstrip("0"), sb.lstrip("0")
            if len(sa) != len(sb):
                return _sign(len(sa) - len(sb))
        if sa != sb:
            return -1 if sa < sb else 1
    if i >= len(a) and j >= len(b):
        return 0
    return 1 if i < len(a) else -1


def parse_rpm(version: str) -> tuple[int, str, str]:
    """(epoch, version, release) of `[epoch:]version[-release]`."""
    v = version.strip()
    epoch = 0
    if ":" in v:
        head, v = v.split(":", 1)
        if not head.isdigit():
            raise InvalidVersion(f"not an rpm version: {version!r}")
        epoch = int(head)
    ver, _, release = v.rpartition("-") if "-" in v else (v, "", "")
    if not ver:
        raise InvalidVersion(f"not an rpm version: {version!r}")
    return epoch, ver, release


def compare_rpm(a: str, b: str) -> int:
    """rpm's EVR order: epoch, then version, then release (when both have one)."""
    ea, va, ra = parse_rpm(a)
    eb, vb, rb = parse_rpm(b)
    if ea != eb:
        return _sign(ea - eb)
    return _rpmvercmp(va, vb) or (_rpmvercmp(ra, rb) if ra and rb else 0)


# -- apk ----------------------------------------------------------------------------------------

_APK_RE = re.compile(
    r"(\d+(?:\.\d+)*)([a-z]?)((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)"
    r"(?:~[0-9a-f]+)?(?:-r(\d+))?"
)
_APK_SUFFIX_RE = re.compile(r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)")
# "" is no suffix: pre-releases sort before it, post-release markers after.
_APK_SUFFIX_RANK = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3, "": 4, "cvs": 5, "svn": 6,
                    "git": 7, "hg": 8, "p": 9}


def _apk_key(version: str) -> tuple[list[str], str, list[tuple[int, int]], int]:
    m = _APK_RE.fullmatch(version.strip())
    if not m:
        raise InvalidVersion(f"not an Alpine version: {version!r}")
    suffixes = [(_APK_SUFFIX_RANK[s], int(n or 0)) for s, n in _APK_SUFFIX_RE.findall(m.group(3))]
    return m.group(1).split("."), m.group(2), suffixes, int(m.group(4) or 0)


def compare_apk(a: str, b: str) -> int:
    """apk-tools order: numbers, letter, suffixes (`_rc1` < release < `_p1`), `-rN`."""
    na, la, sa, ra = _apk_key(a)
    nb, lb, sb, rb = _apk_key(b)
    for k, (x, y) in enumerate(zip(na, nb, strict=False)):
        # After the first number, a leading zero makes apk compare as a fraction (as text).
        if k and (x.startswith("0") or y.startswith("0")):
            if x != y:
                return -1 if x < y else 1
        elif int(x) != int(y):
            return _sign(int(x) - int(y))
    if len(na) != len(nb):
        return _sign(len(na) - len(nb))
    if la != lb:
        return -1 if la < lb else 1
    none = (_APK_SUFFIX_RANK[""], 0)
    for k in range(max(len(sa), len(sb))):
        sx = sa[k] if k < len(sa) else none
        sy = sb[k] if k < len(sb) else none
        if sx != sy:
            return -1 if sx < sy else 1
    return _sign(ra - rb)


# -- semver -------------------------------------------------------------------------------------

_SEMVER_RE = re.compile(
    r"v?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]*)?"
)


def parse_semver(version: str) -> tuple[tuple[int, ...], list[str]]:
    """(numbers padded to three, pre-release identifiers) of a SemVer version (a leading `v`
    as Go writes it, and fewer or more than three numbers, are accepted)."""
    m = _SEMVER_RE.fullmatch(version.strip())
    if not m:
        raise InvalidVersion(f"not a semantic version: {version!r}")
    numbers = tuple(int(n) for n in m.group(1).split("."))
    numbers = numbers + (0,) * (3 - len(numbers))
    return numbers, m.group(2).split(".") if m.group(2) else []


def _prerelease_cmp(a: list[str], b: list[str]) -> int:
    if not a or not b:  # a release sorts after its pre-releases
        return _sign(len(b) - len(a)) if (a or b) else 0
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return _sign(int(x) - int(y))
        if x.isdigit() != y.isdigit():  # numeric identifiers sort before alphanumeric ones
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return _sign(len(a) - len(b))


def compare_semver(a: str, b: str) -> int:
    """SemVer 2.0 precedence (build metadata ignored)."""
    na, pa = parse_semver(a)
    nb, pb = parse_semver(b)
    width = max(len(na), len(nb))
    na, nb = na + (0,) * (width - len(na)), nb + (0,) * (width - len(nb))
    if na != nb:
        return -1 if na < nb else 1
    return _prerelease_cmp(pa, pb)


# -- PEP 440 ------------------------------------------------------------------------------------


def compare_pep440(a: str, b: str) -> int:
    """PEP 440 order (`packaging`): `1.0rc1` < `1.0` < `1.0.post1`, epochs first."""
    from packaging.version import InvalidVersion as PackagingInvalid
    from packaging.version import Version

    try:
        va, vb = Version(a), Version(b)
    except PackagingInvalid as exc:
        raise InvalidVersion(str(exc)) from None
    return (va > vb) - (va < vb)


# -- Maven --------------------------------------------------------------------------------------

_MAVEN_TOKEN_RE = re.compile(r"\d+|[a-z]+")
_MAVEN_ALIASES = {"a": "alpha", "b": "beta", "m": "milestone", "cr": "rc", "ga": "",
                  "final": "", "release": ""}
_MAVEN_RANK = {"alpha": 0, "beta": 1, "milestone": 2, "rc": 3, "snapshot": 4, "": 5, "sp": 6}


def _maven_items(version: str) -> list[int | str]:
    text = version.strip().lower()
    if not text or not text[0].isalnum():
        raise InvalidVersion(f"not a Maven version: {version!r}")
    tokens = [int(t) if t.isdigit() else _MAVEN_ALIASES.get(t, t)
              for t in _MAVEN_TOKEN_RE.findall(text)]
    # Zeros before a qualifier or the end, and release words, say nothing (1.0 == 1 == 1-ga,
    # 1.0-rc1 == 1-rc1); dropping them keeps the order transitive.
    items: list[int | str] = []
    for token in reversed(tokens):
        if token == "" or (token == 0 and (not items or isinstance(items[-1], str))):
            continue
        items.append(token)
    items.reverse()
    return items


def _maven_rank(item: str) -> int:
    return _MAVEN_RANK.get(item, len(_MAVEN_RANK))


def _maven_vs_missing(x: int | str) -> int:
    """An item against the end of the other version (read as 0 or the release, "")."""
    return _sign(x) if isinstance(x, int) else _sign(_maven_rank(x) - _MAVEN_RANK[""])


def _maven_item_cmp(x: int | str | None, y: int | str | None) -> int:
    if x is None:
        return -_maven_vs_missing(y) if y is not None else 0
    if y is None:
        return _maven_vs_missing(x)
    if isinstance(x, int) and isinstance(y, int):
        return _sign(x - y)
    if isinstance(x, int) or isinstance(y, int):  # a number is newer than any qualifier
        return 1 if isinstance(x, int) else -1
    rx, ry = _maven_rank(x), _maven_rank(y)
    if rx != ry:
        return _sign(rx - ry)
    if x != y:  # two unknown qualifiers: as text
        return -1 if x < y else 1
    return 0


def compare_maven(a: str, b: str) -> int:
    """A reasonable Maven order: numbers, then alpha < beta < milestone < rc < snapshot <
    release < sp, unknown qualifiers last."""
    ia, ib = _maven_items(a), _maven_items(b)
    for k in range(max(len(ia), len(ib))):
        c = _maven_item_cmp(ia[k] if k < len(ia) else None, ib[k] if k < len(ib) else None)
        if c:
            return c
    return 0


# -- RubyGems -----------------------------------------------------------------------------------

_GEM_RE = re.compile(r"[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z.-]+)?")


def _gem_segments(version: str) -> list[int | str]:
    text = version.strip()
    if not _GEM_RE.fullmatch(text):
        raise InvalidVersion(f"not a RubyGems version: {version!r}")
    text = text.replace("-", ".pre.")
    segments: list[int | str] = [int(t) if t.isdigit() else t
                                 for t in re.findall(r"[0-9]+|[a-zA-Z]+", text)]
    while segments and segments[-1] == 0:
        segments.pop()
    return segments


def compare_gem(a: str, b: str) -> int:
    """Gem::Version order: a letter segment makes a pre-release (`1.0.a` < `1.0`)."""
    sa, sb = _gem_segments(a), _gem_segments(b)
    for k in range(max(len(sa), len(sb))):
        x = sa[k] if k < len(sa) else 0
        y = sb[k] if k < len(sb) else 0
        if x == y:
            continue
        if isinstance(x, int) and isinstance(y, int):
            return _sign(x - y)
        if isinstance(x, str) and isinstance(y, str):
            return -1 if x < y else 1
        return 1 if isinstance(x, int) else -1
    return 0


COMPARATORS: dict[str, Callable[[str, str], int]] = {
    "dpkg": compare_dpkg, "rpm": compare_rpm, "apk": compare_apk, "semver": compare_semver,
    "pep440": compare_pep440, "maven": compare_maven, "gem": compare_gem,
}


def compare(family: str, a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` sorts before, with or after `b` under `family`'s rules."""
    return COMPARATORS[family](a, b)


def sort_key(family: str) -> Any:
    """A `sorted(key=…)` key ordering version strings of `family`."""
    return cmp_to_key(COMPARATORS[family])
