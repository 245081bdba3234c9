"""Transparency-log evidence, pure functions: the RFC 6962 audit path the verifier walks agrees
with the recursive definition for every leaf of trees of 1 to 40 leaves, an altered path or
index is refused, and a signed note is read as Rekor writes it."""

from __future__ import annotations

import hashlib

import pytest
from integration.signing_fixtures import audit_path, checkpoint, merkle_root, p256, spki

from moorage.signing.rekor import (
    InclusionProof,
    LogProblem,
    check_inclusion,
    leaf_hash,
    parse_checkpoint,
    root_from_path,
)


def test_every_leaf_of_every_small_tree_leads_to_its_root():
    for size in range(1, 41):
        leaves = [b"entry %d" % i for i in range(size)]
        root = merkle_root(leaves)
        for index in range(size):
            path = tuple(audit_path(index, leaves))
            assert root_from_path(leaf_hash(leaves[index]), index, size, path) == root


def test_a_path_of_the_wrong_length_or_a_leaf_outside_the_tree_is_refused():
    leaves = [b"a", b"b", b"c", b"d", b"e"]
    path = tuple(audit_path(2, leaves))
    with pytest.raises(LogProblem, match="has 2 hashes where a leaf at 2 of 5 needs 3"):
        root_from_path(leaf_hash(b"c"), 2, 5, path[:2])
    with pytest.raises(LogProblem, match="puts leaf 5 in a tree of 5 leaves"):
        root_from_path(leaf_hash(b"c"), 5, 5, path)


def test_a_checkpoint_is_read_and_checked_against_the_log_key():
    key = p256()
    leaves = [b"x", b"y", b"z"]
    note = checkpoint(key, 3, merkle_root(leaves))
    parsed = parse_checkpoint(note)
    assert (parsed.origin, parsed.size, parsed.root_hash) == ("rekor.test - 42", 3,
                                                              merkle_root(leaves))
    assert [name for name, _ in parsed.signatures] == ["rekor.test"]
    log_id = hashlib.sha256(spki(key)).hexdigest()  # a log id is SHA-256 of the key's DER
    proof = InclusionProof(1, 3, merkle_root(leaves), tuple(audit_path(1, leaves)), note)
    check_inclusion(b"y", proof, log_id, key.public_key())
    with pytest.raises(LogProblem, match="audit path does not lead"):
        check_inclusion(b"not y", proof, log_id, key.public_key())
    with pytest.raises(LogProblem, match="is not signed by the key of log"):
        check_inclusion(b"y", proof, log_id, p256().public_key())
