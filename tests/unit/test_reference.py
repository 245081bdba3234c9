import pytest

from moorage.oci.errors import ManifestInvalid, NameInvalid
from moorage.oci.reference import parse_reference, validate_name, validate_tag


@pytest.mark.parametrize(
    "name", ["a", "library/ubuntu", "a.b_c__d---e/f", "vision/resnet-50/v2", "x" * 255]
)
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "a//b", "/a", "a/", "..", "a/../b", "-a", "a-", "a___b", "a..b", "x" * 256,
     "a b", "a\x00b", "a/%2e%2e"],
)
def test_invalid_names(name):
    with pytest.raises(NameInvalid):
        validate_name(name)


def test_tags():
    assert validate_tag("v1.0_rc-1") == "v1.0_rc-1"
    assert validate_tag("_x") == "_x"
    for bad in ["", ".x", "-x", "a" * 129, "a/b", "a b"]:
        with pytest.raises(ManifestInvalid):
            validate_tag(bad)


def test_reference_is_digest_or_tag():
    assert parse_reference("latest") == "latest"
    assert parse_reference("sha256:" + "a" * 64).algorithm == "sha256"
