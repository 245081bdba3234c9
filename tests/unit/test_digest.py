import hashlib

import pytest

from moorage.oci.digest import digest_bytes, new_hasher, parse_digest, restore_hasher
from moorage.oci.errors import DigestInvalid


def test_parse_valid_sha256_and_sha512():
    h256 = hashlib.sha256(b"x").hexdigest()
    h512 = hashlib.sha512(b"x").hexdigest()
    assert str(parse_digest(f"sha256:{h256}")) == f"sha256:{h256}"
    assert parse_digest(f"sha512:{h512}").algorithm == "sha512"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256:",
        "sha256:totallywrong",
        "sha256:" + "A" * 64,  # uppercase hex is not canonical
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,  # wrong length for the algorithm
        "md5:" + "a" * 32,  # unsupported algorithm
        "sha256:../../etc/passwd",
        "sha256:" + "a" * 64 + "\n",
        "nocolon",
    ],
)
def test_malformed_digests_raise_digest_invalid(value):
    with pytest.raises(DigestInvalid):
        parse_digest(value)


def test_hasher_state_resumes_in_a_new_object():
    hasher = new_hasher("sha256")
    hasher.update(b"hello ")
    resumed = restore_hasher("sha256", hasher.serialize())
    resumed.update(b"world")
    assert resumed.finalize() == hashlib.sha256(b"hello world").hexdigest()


def test_sha512_hasher_matches_hashlib():
    hasher = new_hasher("sha512")
    hasher.update(b"abc" * 1000)
    assert hasher.finalize() == hashlib.sha512(b"abc" * 1000).hexdigest()


def test_digest_bytes_uses_named_algorithm():
    assert digest_bytes(b"{}", "sha512").hex == hashlib.sha512(b"{}").hexdigest()
