"""Deletion of tags, manifests and blobs (end-9, end-10).

Suite A: Content Management #70–#79 and the teardown deletes of every workflow.
Suite B: `tag-delete`, `manifest-delete`, `blob-delete` with their atomic HEAD checks.
"""

from __future__ import annotations

from support.http import describe, http
from support.oci import (
    OCI_MANIFEST,
    assert_error,
    assert_manifest_served,
    blob_url,
    get_manifest,
    list_tags,
    make_image,
    make_index,
    manifest_url,
    push_manifest,
    push_tree,
    random_digest,
)


def test_delete_tag_removes_only_the_tag(registry, repo):
    """Suite A #74: 202 (the registry supports tag deletion)."""
    m = make_image()
    digest = push_tree(registry, repo, m, tag="tagtest0")
    push_manifest(registry, repo, m.body, OCI_MANIFEST, ref="other")
    r = http.delete(manifest_url(registry, repo, "tagtest0"))
    assert r.status_code == 202, describe(r)
    assert_error(get_manifest(registry, repo, "tagtest0", "HEAD"), 404)
    assert_error(get_manifest(registry, repo, "tagtest0"), 404, "MANIFEST_UNKNOWN")
    assert_manifest_served(get_manifest(registry, repo, digest), m.body, OCI_MANIFEST, digest)
    assert_manifest_served(get_manifest(registry, repo, "other"), m.body, OCI_MANIFEST, digest)
    assert list_tags(registry, repo).json()["tags"] == ["other"]
    for b in m.blobs:  # blobs untouched
        assert http.head(blob_url(registry, repo, b.digest)).status_code == 200


def test_delete_last_tag_keeps_manifest_by_digest(registry, repo):
    m = make_image()
    digest = push_tree(registry, repo, m, tag="only")
    assert http.delete(manifest_url(registry, repo, "only")).status_code == 202
    assert_manifest_served(get_manifest(registry, repo, digest), m.body, OCI_MANIFEST, digest)
    r = list_tags(registry, repo)
    if r.status_code == 200:
        assert r.json()["tags"] == [], describe(r)
    else:
        assert_error(r, 404, "NAME_UNKNOWN")


def test_delete_manifest_by_digest_removes_manifest_and_all_its_tags(registry, repo):
    """Suite A #75–#77: DELETE by digest → 202; GET → 404; tag list shrinks."""
    keep = make_image()
    push_tree(registry, repo, keep, tag="keep")
    m = make_image()
    digest = push_tree(registry, repo, m, tag="tagtest0")
    push_manifest(registry, repo, m.body, OCI_MANIFEST, ref="tagtest1")
    before = list_tags(registry, repo).json()["tags"]
    assert sorted(before) == ["keep", "tagtest0", "tagtest1"]
    r = http.delete(manifest_url(registry, repo, digest))
    assert r.status_code == 202, describe(r)
    assert_error(get_manifest(registry, repo, digest), 404, "MANIFEST_UNKNOWN")
    assert_error(get_manifest(registry, repo, digest, "HEAD"), 404)
    for tag in ("tagtest0", "tagtest1"):
        assert_error(get_manifest(registry, repo, tag), 404, "MANIFEST_UNKNOWN")
    assert list_tags(registry, repo).json()["tags"] == ["keep"]
    assert get_manifest(registry, repo, "keep").status_code == 200


def test_deleting_the_only_manifest_empties_the_tag_list(registry, repo):
    """Suite A #77: count−1 tags, or 404 if that leaves none."""
    digest = push_tree(registry, repo, make_image(), tag="tagtest0")
    assert http.delete(manifest_url(registry, repo, digest)).status_code == 202
    r = list_tags(registry, repo)
    if r.status_code == 200:
        assert r.json()["tags"] == [], describe(r)
    else:
        assert_error(r, 404, "NAME_UNKNOWN")


def test_delete_unknown_manifest_is_404_manifest_unknown(registry, repo):
    push_tree(registry, repo, make_image(), tag="x")
    assert_error(
        http.delete(manifest_url(registry, repo, random_digest())), 404, "MANIFEST_UNKNOWN"
    )
    assert_error(http.delete(manifest_url(registry, repo, "no-such-tag")), 404, "MANIFEST_UNKNOWN")


def test_delete_manifest_twice_second_is_404(registry, repo):
    digest = push_tree(registry, repo, make_image())
    assert http.delete(manifest_url(registry, repo, digest)).status_code == 202
    assert_error(http.delete(manifest_url(registry, repo, digest)), 404, "MANIFEST_UNKNOWN")


def test_deleted_manifest_can_be_pushed_again(registry, repo):
    m = make_image()
    digest = push_tree(registry, repo, m, tag="again")
    assert http.delete(manifest_url(registry, repo, digest)).status_code == 202
    push_manifest(registry, repo, m.body, OCI_MANIFEST, ref="again")
    assert_manifest_served(get_manifest(registry, repo, "again"), m.body, OCI_MANIFEST, digest)


def test_delete_manifest_in_one_repository_keeps_it_in_another(registry, repo, repo2):
    m = make_image()
    digest = push_tree(registry, repo, m, tag="shared")
    push_tree(registry, repo2, m, tag="shared")
    assert http.delete(manifest_url(registry, repo, digest)).status_code == 202
    assert_manifest_served(get_manifest(registry, repo2, "shared"), m.body, OCI_MANIFEST, digest)


def test_delete_index_keeps_its_children(registry, repo):
    a, b = make_image(), make_image()
    idx = make_index([a, b])
    d_idx = push_tree(registry, repo, idx, tag="multi")
    assert http.delete(manifest_url(registry, repo, d_idx)).status_code == 202
    assert_error(get_manifest(registry, repo, "multi"), 404, "MANIFEST_UNKNOWN")
    for child in (a, b):
        r = get_manifest(registry, repo, child.digest)
        assert_manifest_served(r, child.body, OCI_MANIFEST, child.digest)


def test_delete_config_and_layer_blobs_after_manifest(registry, repo):
    """Suite A #78–#79 (and every teardown): DELETE blob → 202, GET → 404."""
    m = make_image()
    digest = push_tree(registry, repo, m, tag="tagtest0")
    assert http.delete(manifest_url(registry, repo, digest)).status_code == 202
    for b in m.blobs:
        r = http.delete(blob_url(registry, repo, b.digest))
        assert r.status_code == 202, describe(r)
        assert_error(http.get(blob_url(registry, repo, b.digest)), 404, "BLOB_UNKNOWN")


def test_delete_blobs_before_manifest(registry, repo):
    """Suite A teardown with OCI_DELETE_MANIFEST_BEFORE_BLOBS=0: blobs first, then manifest."""
    m = make_image()
    digest = push_tree(registry, repo, m)
    for b in m.blobs:
        r = http.delete(blob_url(registry, repo, b.digest))
        assert r.status_code == 202, describe(r)
        assert_error(http.get(blob_url(registry, repo, b.digest)), 404, "BLOB_UNKNOWN")
    r = http.delete(manifest_url(registry, repo, digest))
    assert r.status_code == 202, describe(r)
    r = http.delete(manifest_url(registry, repo, digest))
    assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_manifest_cannot_be_pushed_again_after_its_blobs_were_deleted(registry, repo):
    m = make_image()
    digest = push_tree(registry, repo, m, tag="gone")
    assert http.delete(manifest_url(registry, repo, digest)).status_code == 202
    for b in m.blobs:
        assert http.delete(blob_url(registry, repo, b.digest)).status_code == 202
    r = http.put(manifest_url(registry, repo, "gone"), data=m.body,
                 headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")


def test_put_by_existing_digest_with_other_body_is_400(registry, repo):
    m = make_image()
    digest = push_tree(registry, repo, m)
    r = http.put(manifest_url(registry, repo, digest), data=m.body + b" ",
                 headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
    assert_error(r, 400, "DIGEST_INVALID")
    assert_manifest_served(get_manifest(registry, repo, digest), m.body, OCI_MANIFEST, digest)
