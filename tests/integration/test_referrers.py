"""Referrers API (end-12a/b).

Suite A: Content Discovery #58 (references setup: OCI-Subject, referrers pushed before and
after their subject, missing subject), #62–#65. Suite B: `empty`/`referrers` steps (the data
sets with subjects are in test_data_sets.py).
"""

from __future__ import annotations

import pytest
from support.http import describe, http, next_link
from support.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    all_referrers,
    assert_error,
    assert_referrer_listed,
    assert_referrers_index,
    make_artifact,
    make_image,
    make_index,
    manifest_url,
    push_blob,
    push_tree,
    put_manifest,
    random_digest,
    referrers,
)

ANNOTATION = "org.opencontainers.conformance.test"
BAGEL = "application/vnd.nhl.peanut.butter.bagel"
CROISSANT = "application/vnd.nba.strawberry.jam.croissant"
FOOD_STAND = "application/vnd.food.stand"


def push_referrer(registry, repo, m, expect_subject: str) -> None:
    for child in m.children:
        push_tree(registry, repo, child)
    for b in m.blobs:
        push_blob(registry, repo, b.data, b.algo)
    r = put_manifest(registry, repo, m.digest, m.body, m.media_type)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("OCI-Subject") == expect_subject, describe(r)


@pytest.fixture(scope="module")
def discovery(registry):
    """The suite A references setup, in its order."""
    from support.oci import new_repo

    repo = new_repo("refs")
    subject = make_image()  # manifest[4]
    never_pushed = make_image()  # manifest[3]
    config_typed = [
        make_artifact(
            artifact_type=None,
            config=Blob(b'{"kind":"bagel-%d"}' % i, BAGEL),
            subject=subject,
            annotations={ANNOTATION: f"config-typed-{i}"},
        )
        for i in range(2)
    ]
    artifact_typed = [
        make_artifact(
            artifact_type=CROISSANT, subject=subject, annotations={ANNOTATION: f"typed-{i}"}
        )
        for i in range(2)
    ]
    index_children = [make_artifact(artifact_type="application/vnd.food.part")]
    ref_index = make_index(
        index_children,
        artifact_type=FOOD_STAND,
        subject=subject,
        annotations={ANNOTATION: "index"},
        platforms=False,
    )
    orphan = make_artifact(
        artifact_type=CROISSANT, subject=never_pushed, annotations={ANNOTATION: "orphan"}
    )
    # referrers before their subject exists
    push_referrer(registry, repo, config_typed[0], subject.digest)
    push_referrer(registry, repo, artifact_typed[0], subject.digest)
    push_tree(registry, repo, subject, tag="tagtest0")
    # and after
    push_referrer(registry, repo, config_typed[1], subject.digest)
    push_referrer(registry, repo, artifact_typed[1], subject.digest)
    push_referrer(registry, repo, ref_index, subject.digest)
    push_referrer(registry, repo, orphan, never_pushed.digest)
    return {
        "repo": repo,
        "subject": subject,
        "never_pushed": never_pushed,
        "config_typed": config_typed,
        "artifact_typed": artifact_typed,
        "index": ref_index,
        "orphan": orphan,
    }


def test_referrers_of_unknown_digest_is_empty_index(registry, discovery):
    r = referrers(registry, discovery["repo"], random_digest())
    assert assert_referrers_index(r) == []


def test_referrers_in_repository_that_does_not_exist_is_empty_index(registry, repo):
    r = referrers(registry, repo, random_digest())
    assert assert_referrers_index(r) == []


def test_referrers_lists_config_typed_artifact_typed_and_index_referrers(registry, discovery):
    """Suite A #63: exactly 5 descriptors, each with exactly the pushed annotation."""
    r = referrers(registry, discovery["repo"], discovery["subject"].digest)
    listed = assert_referrers_index(r)
    assert len(listed) == 5, listed
    expected = [*discovery["config_typed"], *discovery["artifact_typed"], discovery["index"]]
    for m in expected:
        assert_referrer_listed(listed, m)
    for d in listed:
        assert len(d.get("annotations", {})) == 1, d
        assert ANNOTATION in d["annotations"], d
    by_digest = {d["digest"]: d for d in listed}
    for m in discovery["config_typed"]:
        assert by_digest[m.digest]["artifactType"] == BAGEL  # from the config mediaType
    for m in discovery["artifact_typed"]:
        assert by_digest[m.digest]["artifactType"] == CROISSANT
    idx = by_digest[discovery["index"].digest]
    assert idx["artifactType"] == FOOD_STAND and idx["mediaType"] == OCI_INDEX, idx


def test_referrers_filter_by_artifact_type(registry, discovery):
    """Suite A #64."""
    r = referrers(registry, discovery["repo"], discovery["subject"].digest, artifactType=BAGEL)
    listed = assert_referrers_index(r)
    assert r.headers.get("OCI-Filters-Applied") == "artifactType", describe(r)
    assert sorted(d["digest"] for d in listed) == sorted(
        m.digest for m in discovery["config_typed"]
    )
    assert all(d["artifactType"] == BAGEL for d in listed)


def test_referrers_filter_on_index_artifact_type(registry, discovery):
    r = referrers(registry, discovery["repo"], discovery["subject"].digest, artifactType=FOOD_STAND)
    listed = assert_referrers_index(r)
    assert r.headers.get("OCI-Filters-Applied") == "artifactType", describe(r)
    assert [d["digest"] for d in listed] == [discovery["index"].digest]


def test_referrers_filter_without_match_is_empty_with_header(registry, discovery):
    subject = discovery["subject"].digest
    r = referrers(registry, discovery["repo"], subject, artifactType="application/vnd.nothing")
    assert assert_referrers_index(r) == []
    assert r.headers.get("OCI-Filters-Applied") == "artifactType", describe(r)


def test_referrers_without_filter_has_no_filters_applied_header(registry, discovery):
    r = referrers(registry, discovery["repo"], discovery["subject"].digest)
    assert_referrers_index(r)
    assert "OCI-Filters-Applied" not in r.headers, describe(r)


def test_referrers_of_missing_subject_are_listed(registry, discovery):
    """Suite A #65."""
    r = referrers(registry, discovery["repo"], discovery["never_pushed"].digest)
    listed = assert_referrers_index(r)
    assert len(listed) == 1, listed
    assert_referrer_listed(listed, discovery["orphan"])


def test_referrer_subject_is_fetchable_and_unchanged(registry, discovery):
    r = http.get(
        manifest_url(registry, discovery["repo"], "tagtest0"), headers={"Accept": OCI_MANIFEST}
    )
    assert r.status_code == 200 and r.content == discovery["subject"].body, describe(r)


@pytest.mark.parametrize("bad", ["sha256:xyz", "notadigest", "sha256:" + "A" * 64, "latest"])
def test_referrers_with_invalid_digest_is_400(registry, discovery, bad):
    r = referrers(registry, discovery["repo"], bad)
    assert_error(r, 400, "DIGEST_INVALID")


def test_referrers_are_scoped_to_the_repository(registry, repo, repo2):
    subject = make_image()
    push_tree(registry, repo, subject)
    push_tree(registry, repo2, subject)
    ref = make_artifact(subject=subject)
    push_referrer(registry, repo, ref, subject.digest)
    assert [d["digest"] for d in all_referrers(registry, repo, subject.digest)] == [ref.digest]
    assert all_referrers(registry, repo2, subject.digest) == []


def test_deleted_referrer_is_no_longer_listed(registry, repo):
    subject = make_image()
    push_tree(registry, repo, subject)
    keep, drop = make_artifact(subject=subject), make_artifact(subject=subject)
    push_referrer(registry, repo, keep, subject.digest)
    push_referrer(registry, repo, drop, subject.digest)
    assert len(all_referrers(registry, repo, subject.digest)) == 2
    r = http.delete(manifest_url(registry, repo, drop.digest))
    assert r.status_code == 202, describe(r)
    assert [d["digest"] for d in all_referrers(registry, repo, subject.digest)] == [keep.digest]


def test_referrers_of_sha512_subject(registry, repo):
    subject = make_image(algo="sha512")
    push_tree(registry, repo, subject)
    ref = make_artifact(subject=subject, annotations={"k": "v"})
    push_referrer(registry, repo, ref, subject.digest)
    listed = all_referrers(registry, repo, subject.digest)
    assert len(listed) == 1
    assert_referrer_listed(listed, ref)


def test_referrers_pagination_with_link_header(registry, repo):
    subject = make_image()
    push_tree(registry, repo, subject)
    empty = make_artifact(subject=subject)  # pushes the {} config and one layer once
    push_referrer(registry, repo, empty, subject.digest)
    refs = [empty]
    for i in range(29):
        m = make_artifact(subject=subject, layers=[], annotations={"org.example.i": str(i)})
        r = put_manifest(registry, repo, m.digest, m.body, m.media_type)
        assert r.status_code == 201, describe(r)
        refs.append(m)
    first = referrers(registry, repo, subject.digest, n=10)
    page = assert_referrers_index(first)
    assert 0 < len(page) <= 10, len(page)
    assert next_link(first), f"no Link rel=next with 30 referrers and n=10: {describe(first)}"
    seen = []
    resp = first
    for _ in range(10):
        seen.extend(d["digest"] for d in assert_referrers_index(resp))
        nxt = next_link(resp)
        if not nxt:
            break
        resp = http.get(nxt)
    assert len(seen) == len(set(seen)), "duplicates across pages"
    assert sorted(seen) == sorted(m.digest for m in refs)


def test_referrer_without_artifact_type_uses_empty_config_media_type(registry, repo):
    subject = make_image()
    push_tree(registry, repo, subject)
    ref = make_artifact(artifact_type=None, subject=subject)
    push_referrer(registry, repo, ref, subject.digest)
    listed = all_referrers(registry, repo, subject.digest)
    assert [d.get("artifactType") for d in listed] == ["application/vnd.oci.empty.v1+json"]


def test_index_referrer_without_artifact_type_omits_it(registry, repo):
    subject = make_image()
    push_tree(registry, repo, subject)
    ref = make_index([make_artifact()], subject=subject, platforms=False)
    push_referrer(registry, repo, ref, subject.digest)
    listed = all_referrers(registry, repo, subject.digest)
    assert len(listed) == 1
    assert "artifactType" not in listed[0], listed[0]
    assert listed[0]["mediaType"] == OCI_INDEX and listed[0]["digest"] == ref.digest


def test_untagging_a_referrer_keeps_it_listed(registry, repo):
    subject = make_image()
    push_tree(registry, repo, subject)
    ref = make_artifact(subject=subject)
    push_referrer(registry, repo, ref, subject.digest)
    r = put_manifest(registry, repo, "sig", ref.body, ref.media_type)
    assert r.status_code == 201, describe(r)
    assert http.delete(manifest_url(registry, repo, "sig")).status_code == 202
    assert [d["digest"] for d in all_referrers(registry, repo, subject.digest)] == [ref.digest]


def test_referrer_pushed_by_tag_is_listed(registry, repo):
    subject = make_image()
    push_tree(registry, repo, subject)
    ref = make_artifact(subject=subject, annotations={"org.example.by": "tag"})
    for b in ref.blobs:
        push_blob(registry, repo, b.data)
    r = put_manifest(registry, repo, "by-tag", ref.body, ref.media_type)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("OCI-Subject") == subject.digest, describe(r)
    listed = all_referrers(registry, repo, subject.digest)
    assert len(listed) == 1
    assert_referrer_listed(listed, ref)


def test_referrers_pagination_keeps_the_artifact_type_filter(registry, repo):
    subject = make_image()
    push_tree(registry, repo, subject)
    empty = make_artifact(subject=subject, artifact_type="application/vnd.example.a")
    push_referrer(registry, repo, empty, subject.digest)
    wanted = {empty.digest}
    for i in range(23):
        atype = "application/vnd.example.a" if i % 2 else "application/vnd.example.b"
        m = make_artifact(
            subject=subject, layers=[], artifact_type=atype, annotations={"i": str(i)}
        )
        r = put_manifest(registry, repo, m.digest, m.body, m.media_type)
        assert r.status_code == 201, describe(r)
        if atype.endswith(".a"):
            wanted.add(m.digest)
    resp = referrers(registry, repo, subject.digest, artifactType="application/vnd.example.a", n=4)
    seen = []
    for _ in range(20):
        page = assert_referrers_index(resp)
        assert len(page) <= 4, len(page)
        assert resp.headers.get("OCI-Filters-Applied") == "artifactType", describe(resp)
        assert all(d["artifactType"] == "application/vnd.example.a" for d in page), page
        seen.extend(d["digest"] for d in page)
        nxt = next_link(resp)
        if not nxt:
            break
        resp = http.get(nxt)
    assert len(seen) == len(set(seen))
    assert set(seen) == wanted
