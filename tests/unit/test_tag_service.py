"""Tag listing on the manifest service: byte order, paging after `last`, unknown repositories."""

from __future__ import annotations

import pytest

from moorage.bootstrap import Registry
from moorage.oci.errors import NameUnknown

from .content import push, pushed_image

REPO = "team/app"


def _tag_all(registry: Registry, names: list[str]) -> None:
    content = pushed_image(registry, REPO)
    for name in names:
        push(registry, REPO, name, content)


def test_tags_are_listed_in_byte_order(registry: Registry) -> None:
    names = ["v2", "latest", "V1", "v10", "1.0", "v1", "_x"]
    _tag_all(registry, names)
    assert registry.manifests.tags(REPO, None, 100) == sorted(names)  # byte order: "1" < "V" < "_"


def test_tag_pages_continue_after_last(registry: Registry) -> None:
    names = sorted(f"t{i:02d}" for i in range(7))
    _tag_all(registry, names)
    assert registry.manifests.tags(REPO, None, 3) == names[:3]
    assert registry.manifests.tags(REPO, "t02", 3) == names[3:6]
    assert registry.manifests.tags(REPO, "t05", 3) == names[6:]
    assert registry.manifests.tags(REPO, "t06", 3) == []
    # `last` need not be a tag: the page starts after it in byte order.
    assert registry.manifests.tags(REPO, "t035", 2) == ["t04", "t05"]


def test_an_unknown_repository_is_name_unknown(registry: Registry) -> None:
    _tag_all(registry, ["v1"])
    with pytest.raises(NameUnknown) as unknown:
        registry.manifests.tags("team/nothing", None, 10)
    assert (unknown.value.code, unknown.value.status) == ("NAME_UNKNOWN", 404)
    assert unknown.value.detail == {"name": "team/nothing"}
