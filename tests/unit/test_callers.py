"""The one service call behind each handler that used to make several: starting an upload
(mount, push whole or session), a catalog page filtered by the caller, a quota set with its
usage, a tag page of no names; and the gc job that applies retention first."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from moorage.auth.identity import ANONYMOUS, CLI
from moorage.bootstrap import Registry
from moorage.oci.digest import parse_digest
from moorage.oci.errors import BlobUnknown, NameUnknown
from moorage.registry.uploads import Begun

from .conftest import make_registry
from .content import _body, digest_of, push_blob, push_image, run_job


def _begin(registry: Registry, repository: str, **kwargs: Any) -> Begun:
    """A POST to uploads/ of `repository` with no body."""
    return asyncio.run(registry.uploads.begin(repository, _body(b""), 0, **kwargs))


def test_begin_mounts_from_a_holder_the_lenders_allow(registry: Registry) -> None:
    digest = parse_digest(push_blob(registry, "team/src", os.urandom(256)))
    asked: list[list[str]] = []

    async def lenders(candidates: list[str]) -> list[str]:
        asked.append(candidates)
        return candidates

    begun = _begin(registry, "team/dst", mount=digest, lenders=lenders)

    assert (begun.blob, begun.session) == (digest, None)
    assert asked == [["team/src"]]
    assert registry.blobs.locate("team/dst", digest).digest == str(digest)


def test_begin_opens_a_session_when_no_lender_is_allowed(registry: Registry) -> None:
    digest = parse_digest(push_blob(registry, "team/src", os.urandom(256)))

    async def nobody(candidates: list[str]) -> list[str]:
        return []

    begun = _begin(registry, "team/dst", mount=digest, mount_from="team/src", lenders=nobody)

    assert begun.blob is None and begun.session is not None and begun.session.offset == 0
    with pytest.raises(BlobUnknown):
        registry.blobs.locate("team/dst", digest)


def test_begin_asks_the_lenders_about_the_named_source_only(registry: Registry) -> None:
    digest = parse_digest(push_blob(registry, "team/src", os.urandom(256)))
    push_blob(registry, "team/other", bytes(256))
    asked: list[list[str]] = []

    async def lenders(candidates: list[str]) -> list[str]:
        asked.append(candidates)
        return candidates

    begun = _begin(registry, "team/dst", mount=digest, mount_from="team/nowhere",
                   lenders=lenders)

    assert asked == [["team/nowhere"]] and begun.session is not None


def test_begin_pushes_whole_when_the_mount_fails_and_a_digest_is_given(
    registry: Registry,
) -> None:
    data = os.urandom(300)
    digest = parse_digest(digest_of(data))
    begun = asyncio.run(registry.uploads.begin("team/app", _body(data), len(data),
                                               mount=digest, digest=digest))
    assert begun.blob == digest
    assert registry.blobs.locate("team/app", digest).size == 300


def test_catalog_pages_skip_what_the_caller_may_not_pull(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "r", auth=True)
    try:
        registry.admin.add_namespace(CLI, "apriv", "private")
        registry.admin.add_namespace(CLI, "bpub", "public")
        for repo in ("apriv/x", "apriv/y", "bpub/z", "bpub/w"):
            push_blob(registry, repo, os.urandom(64))
        catalog = registry.catalog

        # The first batch (apriv/x, apriv/y) is hidden: the page is filled from the next ones.
        assert catalog.catalog_visible_to(ANONYMOUS, None, 1) == ["bpub/w", "bpub/z"]
        assert catalog.catalog_visible_to(ANONYMOUS, None, 0) == []
        assert catalog.catalog_visible_to(CLI, None, 10) == [
            "apriv/x", "apriv/y", "bpub/w", "bpub/z"]
    finally:
        registry.close()


def test_set_quota_answers_the_usage_with_the_new_limit(registry: Registry) -> None:
    push_blob(registry, "team/app", os.urandom(100))
    usage = registry.policies.set_quota(CLI, "team", 5000)
    assert (usage["namespace"], usage["limit_bytes"]) == ("team", 5000)
    assert usage["usage_bytes"] == registry.policies.usage(CLI, "team")["usage_bytes"]
    assert registry.policies.set_quota(CLI, "team", None)["limit_bytes"] is None


def test_a_tag_page_of_no_names_still_knows_unknown_repositories(registry: Registry) -> None:
    push_image(registry, "team/app", "v1")
    assert registry.manifests.tags("team/app", None, 0) == []
    with pytest.raises(NameUnknown):
        registry.manifests.tags("team/nothing", None, 0)


@pytest.mark.parametrize("dry_run", [False, True])
def test_the_gc_job_applies_retention_first_unless_a_dry_run(registry: Registry,
                                                             dry_run: bool) -> None:
    for tag in ("v1", "v2"):
        push_image(registry, "team/app", tag)
        time.sleep(0.01)  # distinct push times
    registry.policies.set_policy(CLI, "team", None, {"keep_last_pushed": 1})

    job, _ = registry.jobs.enqueue("gc", {"retention": True, "grace_period": 0,
                                          "dry_run": dry_run})
    finished = run_job(registry, job.id)

    assert (finished.state, finished.last_error) == ("done", None)
    expected = ["v1", "v2"] if dry_run else ["v2"]
    assert registry.manifests.tags("team/app", None, 10) == expected
