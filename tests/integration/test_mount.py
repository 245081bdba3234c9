"""Cross-repository blob mount (suite A #41–#46, suite B `mount`, `mount anonymous`,
`mount missing`)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from support.http import add_query, describe, http, resolve
from support.oci import (
    assert_blob_created,
    assert_error,
    blob_exists,
    blob_url,
    digest_of,
    new_repo,
    push_blob,
    put_final,
    random_bytes,
    random_digest,
    uploads_url,
)


def mount(registry, repo: str, digest: str, source: str | None = None):
    params = {"mount": digest}
    if source is not None:
        params["from"] = source
    return http.post(
        add_query(uploads_url(registry, repo), params), headers={"Content-Length": "0"}
    )


def test_mount_from_repository_holding_blob_returns_201(registry, repo, repo2, algo):
    data = random_bytes(900)
    digest = push_blob(registry, repo, data, algo)
    r = mount(registry, repo2, digest, repo)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    loc = urlsplit(r.headers["Location"])
    assert loc.path == f"/v2/{repo2}/blobs/{digest}", describe(r)  # suite A #43
    assert loc.query == "", describe(r)
    g = http.get(resolve(r))
    assert g.status_code == 200 and g.content == data, describe(g)
    h = http.head(blob_url(registry, repo2, digest))
    assert h.status_code == 200 and h.headers.get("Content-Length") == "900", describe(h)


def test_blob_is_readable_in_target_only_after_mount(registry, repo, repo2):
    data = random_bytes(128)
    digest = push_blob(registry, repo, data)
    push_blob(registry, repo2, random_bytes(4))
    assert not blob_exists(registry, repo2, digest)
    assert mount(registry, repo2, digest, repo).status_code == 201
    assert blob_exists(registry, repo2, digest)
    # the source keeps it; deleting it in the target does not touch the source
    assert http.delete(blob_url(registry, repo2, digest)).status_code == 202
    assert not blob_exists(registry, repo2, digest)
    assert blob_exists(registry, repo, digest)


def test_mount_into_repository_that_already_has_blob_returns_201(registry, repo, repo2):
    data = random_bytes(64)
    digest = push_blob(registry, repo, data)
    push_blob(registry, repo2, data)
    r = mount(registry, repo2, digest, repo)
    assert_blob_created(r, digest, data)


def test_mount_of_blob_missing_in_source_opens_session_that_accepts_put(
    registry, repo, repo2, algo
):
    """Suite B `mount missing` (a 201 is a failure) and suite A #44."""
    push_blob(registry, repo, random_bytes(16))  # the source exists but lacks the blob
    data = random_bytes(333)
    digest = digest_of(data, algo)
    r = mount(registry, repo2, digest, repo)
    assert r.status_code == 202, describe(r)
    assert urlsplit(resolve(r)).path.startswith(f"/v2/{repo2}/blobs/uploads/"), describe(r)
    assert not blob_exists(registry, repo2, digest)
    assert_blob_created(put_final(resolve(r), digest, data), digest, data)


def test_mount_from_repository_without_blob_is_202_even_if_another_repository_has_it(
    registry, repo, repo2
):
    data = random_bytes(200)
    digest = push_blob(registry, new_repo("holder"), data)
    push_blob(registry, repo, random_bytes(16))
    r = mount(registry, repo2, digest, repo)
    assert r.status_code == 202, describe(r)
    assert not blob_exists(registry, repo2, digest)


def test_mount_from_unknown_repository_opens_session(registry, repo):
    r = mount(registry, repo, random_digest(), new_repo("nowhere"))
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Location"), describe(r)


def test_anonymous_mount_of_existing_blob_returns_201(registry, repo, repo2, algo):
    data = random_bytes(321)
    digest = push_blob(registry, repo, data, algo)
    r = mount(registry, repo2, digest)
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    assert urlsplit(r.headers["Location"]).path == f"/v2/{repo2}/blobs/{digest}", describe(r)
    g = http.get(resolve(r))
    assert g.status_code == 200 and g.content == data, describe(g)


def test_anonymous_mount_of_unknown_blob_opens_session(registry, repo):
    """Suite A #41: POST ?mount=<unknown digest> without from → 202 + Location."""
    data = random_bytes(100)
    r = mount(registry, repo, digest_of(data))
    assert r.status_code == 202, describe(r)
    assert urlsplit(resolve(r)).path.startswith(f"/v2/{repo}/blobs/uploads/"), describe(r)
    assert_blob_created(put_final(resolve(r), digest_of(data), data), digest_of(data), data)


def test_anonymous_mount_of_deleted_blob_opens_session(registry, repo, repo2):
    """A blob its only repository deleted is no repository's to lend: the mount without `from`
    opens an upload session (202), and the upload completes it."""
    data = random_bytes(100)
    digest = push_blob(registry, repo, data)
    assert http.delete(blob_url(registry, repo, digest)).status_code == 202
    r = mount(registry, repo2, digest)
    assert r.status_code == 202, describe(r)
    assert urlsplit(resolve(r)).path.startswith(f"/v2/{repo2}/blobs/uploads/"), describe(r)
    assert_blob_created(put_final(resolve(r), digest, data), digest, data)


@pytest.mark.parametrize("bad", ["sha256:xyz", "notadigest"])
def test_mount_with_malformed_digest_is_400_digest_invalid(registry, repo, repo2, bad):
    push_blob(registry, repo, random_bytes(8))
    r = mount(registry, repo2, bad, repo)
    assert_error(r, 400, "DIGEST_INVALID")


def test_mount_from_invalid_repository_name_is_400_name_invalid(registry, repo):
    """A `from` that cannot be a repository name is bad input (400 NAME_INVALID), not a
    mount that quietly falls back to a new upload session (202)."""
    r = mount(registry, repo, random_digest(), "UPPER/Case")
    assert_error(r, 400, "NAME_INVALID")
    assert "Location" not in r.headers, describe(r)


def test_mount_from_repository_that_deleted_the_blob_is_202(registry, repo, repo2):
    data = random_bytes(150)
    digest = push_blob(registry, repo, data)
    assert http.delete(blob_url(registry, repo, digest)).status_code == 202
    r = mount(registry, repo2, digest, repo)
    assert r.status_code == 202, describe(r)
    assert not blob_exists(registry, repo2, digest)


def test_mount_with_percent_encoded_digest(registry, repo, repo2):
    data = random_bytes(90)
    digest = push_blob(registry, repo, data)
    url = f"{uploads_url(registry, repo2)}?mount={digest.replace(':', '%3A')}&from={repo}"
    r = http.post(url)
    assert_blob_created(r, digest, data)
