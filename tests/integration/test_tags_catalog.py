"""Tag listing (end-8a/b) and the catalog.

Suite A: Content Discovery #56, #59–#61, Content Management #73, #77.
Suite B: `tag list` (empty repo), `tag-list` (`?last=<middle>` without `n`).
"""

from __future__ import annotations

import uuid

import pytest
from support.http import describe, http, next_link
from support.oci import (
    OCI_MANIFEST,
    assert_error,
    follow_pages,
    list_tags,
    make_image,
    push_blob,
    push_manifest,
    push_tree,
    v2,
)

MIXED = ["test0", "test1", "test2", "test3", "TEST0", "TEST1", "TEST2", "TEST3"]


@pytest.fixture(scope="module")
def tagged(registry):
    """A repository with one manifest under the 8 mixed-case tags of suite A, plus more."""
    from support.oci import new_repo

    repo = new_repo("tags")
    m = make_image()
    push_tree(registry, repo, m)
    tags = [*MIXED, "a", "b-1", "b_2", "c.3", "latest", "v1.0", "z"]
    for tag in tags:
        push_manifest(registry, repo, m.body, OCI_MANIFEST, ref=tag)
    return repo, tags


def _is_sorted(tags: list[str]) -> bool:
    return tags == sorted(tags) or tags == sorted(tags, key=str.lower)


def test_tag_list_returns_all_tags_sorted(registry, tagged):
    """Suite A #59: case-insensitive lexical order or plain ASCII order."""
    repo, tags = tagged
    r = list_tags(registry, repo)
    assert r.status_code == 200, describe(r)
    body = r.json()
    assert body["name"] == repo
    assert sorted(body["tags"]) == sorted(tags)
    assert _is_sorted(body["tags"]), body["tags"]
    assert next_link(r) is None, describe(r)


def test_tag_list_n_limits_the_count_and_sets_link(registry, tagged):
    """Suite A #60."""
    repo, tags = tagged
    half = len(tags) // 2
    r = list_tags(registry, repo, n=half)
    assert r.status_code == 200, describe(r)
    assert len(r.json()["tags"]) == half, describe(r)
    link = r.headers.get("Link", "")
    assert 'rel="next"' in link and link.startswith("<"), describe(r)


def test_tag_list_last_starts_after_that_tag(registry, tagged):
    """Suite A #61."""
    repo, tags = tagged
    half = len(tags) // 2
    first = list_tags(registry, repo, n=half).json()["tags"]
    second = list_tags(registry, repo, n=half, last=first[-1])
    assert second.status_code == 200, describe(second)
    page = second.json()["tags"]
    assert 0 < len(page) <= half
    assert first[-1] not in page
    assert not set(first) & set(page)


def test_tag_list_pages_via_link_cover_everything_once(registry, tagged):
    repo, tags = tagged
    got = follow_pages(list_tags(registry, repo, n=4), "tags")
    assert len(got) == len(set(got)) == len(tags)
    assert _is_sorted(got), got


def test_tag_list_last_without_n(registry, tagged):
    """Suite B: take the middle tag M, `?last=M` → exactly the tags after M (in the order the
    registry uses; the lowercase-only test below checks suite B's exact ASCII expectation)."""
    repo, _ = tagged
    full = list_tags(registry, repo).json()["tags"]
    middle = full[len(full) // 2]
    r = list_tags(registry, repo, last=middle)
    assert r.status_code == 200, describe(r)
    assert r.json()["tags"] == full[full.index(middle) + 1 :], describe(r)


def test_tag_list_last_lowercase_only(registry, repo):
    m = make_image()
    push_tree(registry, repo, m)
    tags = ["alpha", "beta", "delta", "gamma", "omega"]
    for tag in tags:
        push_manifest(registry, repo, m.body, OCI_MANIFEST, ref=tag)
    r = list_tags(registry, repo, last="delta")
    assert r.status_code == 200 and r.json()["tags"] == ["gamma", "omega"], describe(r)
    r = list_tags(registry, repo, last="c")  # a `last` that is not a tag
    assert r.status_code == 200 and r.json()["tags"] == ["delta", "gamma", "omega"], describe(r)
    r = list_tags(registry, repo, last="omega")
    assert r.status_code == 200 and r.json()["tags"] == [], describe(r)


def test_tag_list_n_zero_is_empty_without_link(registry, tagged):
    repo, _ = tagged
    r = list_tags(registry, repo, n=0)
    assert r.status_code == 200, describe(r)
    assert r.json()["tags"] == [], describe(r)
    assert "Link" not in r.headers, describe(r)


def test_tag_list_n_larger_than_count_returns_all(registry, tagged):
    repo, tags = tagged
    r = list_tags(registry, repo, n=1000)
    assert r.status_code == 200, describe(r)
    assert sorted(r.json()["tags"]) == sorted(tags)
    assert next_link(r) is None, describe(r)


def test_tag_list_of_unknown_repository_is_404_name_unknown(registry, repo):
    assert_error(list_tags(registry, repo), 404, "NAME_UNKNOWN")


def test_tag_list_of_repository_with_blobs_but_no_tags(registry, repo):
    """Suite B `empty` group: a repository without tags lists 200 (empty) or 404."""
    push_blob(registry, repo, b"just a blob")
    r = list_tags(registry, repo)
    if r.status_code == 200:
        assert r.json()["tags"] == [], describe(r)
    else:
        assert_error(r, 404, "NAME_UNKNOWN")


@pytest.mark.parametrize("n", ["-1", "abc", "1.5"])
def test_tag_list_with_invalid_n_is_400_unsupported(registry, tagged, n):
    """`n` must be a whole number: anything else is refused, never ignored or a 500. The OCI
    spec has no pagination error code (Distribution's PAGINATION_NUMBER_INVALID is not one of
    the spec's), so the answer is 400 UNSUPPORTED naming the parameter."""
    repo, _ = tagged
    r = http.get(v2(registry, f"{repo}/tags/list"), params={"n": n})
    assert_error(r, 400, "UNSUPPORTED")
    assert "n=" in r.json()["errors"][0]["message"], describe(r)


# ----------------------------------------------------------------------------------------------
# catalog


def _catalog_sorted(repos: list[str]) -> bool:
    """Plain string order, or component-wise order (what a directory walk gives)."""
    return repos == sorted(repos) or repos == sorted(repos, key=lambda s: s.split("/"))


@pytest.fixture(scope="module")
def catalog_repos(registry):
    prefix = f"cat-{uuid.uuid4().hex[:10]}"
    names = [f"{prefix}/a", f"{prefix}/b", f"{prefix}/b/c", f"{prefix}/d", f"{prefix}-x/e"]
    for name in names:
        push_tree(registry, name, make_image(), tag="latest")
    return names


def test_catalog_lists_repositories_sorted(registry, catalog_repos):
    r = http.get(v2(registry, "_catalog"), params={"n": 100000})
    assert r.status_code == 200, describe(r)
    repos = r.json()["repositories"]
    assert set(catalog_repos) <= set(repos)
    assert _catalog_sorted(repos), repos


def test_catalog_without_params_lists_repositories(registry, catalog_repos):
    r = http.get(v2(registry, "_catalog"))
    assert r.status_code == 200, describe(r)
    everything = follow_pages(r, "repositories")
    assert set(catalog_repos) <= set(everything)
    assert _catalog_sorted(everything), everything


def test_catalog_pagination_with_n_last_and_link(registry, catalog_repos):
    first = http.get(v2(registry, "_catalog"), params={"n": 2})
    assert first.status_code == 200, describe(first)
    assert len(first.json()["repositories"]) == 2, describe(first)
    assert next_link(first), describe(first)
    everything = follow_pages(first, "repositories", limit=100000)
    assert len(everything) == len(set(everything)), "duplicates across catalog pages"
    assert _catalog_sorted(everything), everything
    assert set(catalog_repos) <= set(everything)


def test_catalog_last_starts_after_that_repository(registry, catalog_repos):
    a, b, bc = catalog_repos[:3]
    r = http.get(v2(registry, "_catalog"), params={"n": 2, "last": a})
    assert r.status_code == 200, describe(r)
    assert r.json()["repositories"] == [b, bc], describe(r)


def test_catalog_n_zero_is_empty(registry, catalog_repos):
    r = http.get(v2(registry, "_catalog"), params={"n": 0})
    assert r.status_code == 200, describe(r)
    assert r.json()["repositories"] == [], describe(r)
    assert "Link" not in r.headers, describe(r)
