"""Version ordering per ecosystem family (scan/versions.py): the hard cases of each, and the
order laws (antisymmetry, transitivity) on generated dpkg and semver versions; dpkg's own
`--compare-versions` is the oracle where the machine has it."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.scan.versions import InvalidVersion, compare, family_of

# (family, lower, higher): compare(lower, higher) must be -1 and the reverse 1.
ORDERED = [
    # dpkg: epoch first, `~` before everything (even the end), revisions compared last
    ("dpkg", "2.0", "1:1.0"),
    ("dpkg", "1.0~rc1", "1.0"),
    ("dpkg", "1.0~~", "1.0~"),
    ("dpkg", "1.0-1", "1.0-1ubuntu1"),
    ("dpkg", "1.0", "1.0a"),
    ("dpkg", "1.0", "1.0+b1"),
    ("dpkg", "1.9", "1.10"),
    ("dpkg", "2.36-9+deb12u4", "2.36-9+deb12u10"),
    ("dpkg", "1:2.36-9", "2:0.1"),
    ("dpkg", "1.0-2", "1.0-10"),
    # rpm: `~` sorts before the base, `^` after it (and before a real next version)
    ("rpm", "1.0~rc1", "1.0"),
    ("rpm", "1.0", "1.0^git1"),
    ("rpm", "1.0^git1", "1.0.1"),
    ("rpm", "1.0-1.el8", "1.0-2.el8"),
    ("rpm", "1:9.9", "2:1.0"),
    ("rpm", "1.0a", "1.0.1"),
    ("rpm", "1.02", "1.10"),
    # apk: -rN numeric, pre-release suffixes before the release, _p after
    ("apk", "1.2.3-r9", "1.2.3-r10"),
    ("apk", "1.2.3_rc1", "1.2.3"),
    ("apk", "1.2.3_alpha", "1.2.3_beta"),
    ("apk", "1.2.3_beta2", "1.2.3_pre1"),
    ("apk", "1.2.3", "1.2.3_p1"),
    ("apk", "1.2", "1.2a"),
    ("apk", "1.2.9", "1.2.10"),
    ("apk", "1.2.3-r4", "1.2.4-r0"),
    # semver: pre-release precedence from the SemVer spec; Go's `v` prefix
    ("semver", "1.0.0-alpha", "1.0.0-alpha.1"),
    ("semver", "1.0.0-alpha.1", "1.0.0-alpha.beta"),
    ("semver", "1.0.0-alpha.beta", "1.0.0-beta"),
    ("semver", "1.0.0-beta.2", "1.0.0-beta.11"),
    ("semver", "1.0.0-rc.1", "1.0.0"),
    ("semver", "1.9.0", "1.10.0"),
    ("semver", "v1.2.3", "v1.2.10"),
    ("semver", "v0.0.0-20191109021931-daa7c04131f5", "v0.0.1"),
    ("semver", "1.2.3", "v1.2.4"),
    # PEP 440
    ("pep440", "1.0rc1", "1.0"),
    ("pep440", "1.0", "1.0.post1"),
    ("pep440", "1.0.dev1", "1.0a1"),
    ("pep440", "2.0", "1!0.1"),
    # Maven: qualifiers alpha < beta < milestone < rc < snapshot < release < sp
    ("maven", "1.0-alpha1", "1.0-beta1"),
    ("maven", "1.0-beta1", "1.0-M1"),
    ("maven", "1.0-M1", "1.0-RC1"),
    ("maven", "1.0-RC1", "1.0-SNAPSHOT"),
    ("maven", "1.0-SNAPSHOT", "1.0"),
    ("maven", "1.0", "1.0-sp1"),
    ("maven", "1.0-sp1", "1.0.1"),
    ("maven", "2.9", "2.10"),
    # RubyGems: a letter segment is a pre-release
    ("gem", "1.0.a", "1.0"),
    ("gem", "1.0.0.pre", "1.0.0"),
    ("gem", "1.0", "1.0.1"),
]

EQUAL = [
    ("dpkg", "1.0", "1.0-0"),
    ("dpkg", "0:1.0-1", "1.0-1"),
    ("rpm", "0:1.0-1", "1.0-1"),
    ("semver", "v1.2.3", "1.2.3"),
    ("semver", "1.2.3+build.5", "1.2.3"),
    ("pep440", "1.0", "1.0.0"),
    ("maven", "1.0", "1"),
    ("maven", "1-ga", "1.0.0"),
    ("maven", "1.0.RELEASE", "1.0"),
    ("apk", "1.2.3-r0", "1.2.3"),
    ("gem", "1.0.0", "1"),
]


@pytest.mark.parametrize(("family", "lower", "higher"), ORDERED)
def test_ordered_pairs(family: str, lower: str, higher: str) -> None:
    assert compare(family, lower, higher) == -1
    assert compare(family, higher, lower) == 1


@pytest.mark.parametrize(("family", "a", "b"), EQUAL)
def test_equal_versions(family: str, a: str, b: str) -> None:
    assert compare(family, a, b) == 0
    assert compare(family, b, a) == 0


@pytest.mark.parametrize(("family", "bad"), [
    ("dpkg", ""), ("dpkg", "abc"), ("semver", "1.2.x"), ("apk", "1.2.3-x1"),
    ("pep440", "not a version"), ("maven", "-1"), ("gem", "1..a"),
])
def test_unorderable_versions_raise(family: str, bad: str) -> None:
    with pytest.raises(InvalidVersion):
        compare(family, bad, "1.0")


def test_ecosystems_map_to_families() -> None:
    assert family_of("Debian:12") == "dpkg"
    assert family_of("Ubuntu:22.04:LTS") == "dpkg"
    assert family_of("Alpine:v3.19") == "apk"
    assert family_of("Red Hat") == "rpm"
    assert family_of("PyPI") == "pep440"
    assert family_of("Go") == "semver"
    assert family_of("crates.io") == "semver"
    assert family_of("Maven") == "maven"
    assert family_of("Hackage") is None


# -- order laws on generated versions ------------------------------------------------------------

_digits = st.text("0123456789", min_size=1, max_size=3)
_dpkg_part = st.text("0123456789abz.+~", max_size=6)
dpkg_versions = st.builds(
    lambda epoch, lead, rest, rev: f"{epoch}{lead}{rest}{rev}",
    st.sampled_from(["", "1:", "2:"]), _digits, _dpkg_part,
    st.one_of(st.just(""), st.builds(lambda r: f"-{r}", st.text("0123456789abz.+~", min_size=1,
                                                                 max_size=5))),
)
_ident = st.one_of(_digits.map(lambda d: str(int(d))), st.text("abcz-", min_size=1, max_size=4))
semver_versions = st.builds(
    lambda nums, pre: ".".join(str(int(n)) for n in nums) + (f"-{'.'.join(pre)}" if pre else ""),
    st.lists(_digits, min_size=3, max_size=3), st.lists(_ident, max_size=3),
)

rpm_versions = st.text("0123ab.~^-", min_size=1, max_size=7).filter(
    lambda v: not v.startswith("-") and not v.endswith("-"))
apk_versions = st.builds(
    lambda numbers, letter, suffixes, release: numbers + letter + suffixes + release,
    st.sampled_from(["1", "1.2", "1.02", "1.10", "2.0.0", "1.2.3"]), st.sampled_from(["", "a"]),
    st.lists(st.sampled_from(["_alpha", "_rc1", "_rc2", "_p", "_p1", "_git", "_pre3"]),
             max_size=2).map("".join),
    st.sampled_from(["", "-r0", "-r1", "-r10"]),
)
maven_versions = st.lists(
    st.sampled_from(["1", "0", "2", "10", "alpha", "beta", "rc", "sp", "snapshot", "foo", "ga"]),
    max_size=4).map(lambda tokens: "-".join(["1", *tokens]))


@pytest.mark.parametrize(("family", "versions"), [
    ("dpkg", dpkg_versions), ("semver", semver_versions), ("rpm", rpm_versions),
    ("apk", apk_versions), ("maven", maven_versions)])
def test_order_is_antisymmetric_and_transitive(family: str, versions: st.SearchStrategy) -> None:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(versions, versions, versions)
    def check(a: str, b: str, c: str) -> None:
        assert compare(family, a, a) == 0
        assert compare(family, a, b) == -compare(family, b, a)
        if compare(family, a, b) <= 0 and compare(family, b, c) <= 0:
            assert compare(family, a, c) <= 0
        if compare(family, a, b) == 0:
            assert compare(family, a, c) == compare(family, b, c)

    check()


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed here")
@settings(max_examples=60, deadline=None)
@given(dpkg_versions, dpkg_versions)
def test_dpkg_order_agrees_with_dpkg_itself(a: str, b: str) -> None:
    def dpkg_says(op: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", a, op, b],
                              check=False, capture_output=True).returncode == 0

    expected = -1 if dpkg_says("lt") else 1 if dpkg_says("gt") else 0
    assert compare("dpkg", a, b) == expected, (a, b)
