"""/api/v1/models on an auth-enabled server: a caller sees only the models of repositories they
may pull (search leaves the others out, a card of one is DENIED), and no credentials is 401."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from support.http import call, describe
from support.models import WEIGHT_RAW, file_layer, modelpack, safetensors, tensor

from .authkit import World, new_password, push_image, start_auth_registry, uniq

FAST = {"MOORAGE_MODELS_ON_PUSH": "1", "MOORAGE_JOB_POLL_INTERVAL": "0.1",
        "MOORAGE_EVENTS_POLL_INTERVAL": "0.1", "MOORAGE_UPLOAD_EXPIRY_INTERVAL": "0",
        "MOORAGE_GC_INTERVAL": "0"}
TIMEOUT = 90.0


@pytest.fixture(scope="module")
def models_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One-worker auth server indexing models; a team namespace and a member of it."""
    password = new_password()
    reg = start_auth_registry(tmp_path_factory.mktemp("authmodels"), "--workers", "1",
                              admin_password=password, **FAST)
    try:
        yield World(reg=reg, admin_password=password)
    finally:
        reg.stop()


def test_the_api_hides_models_of_repositories_the_caller_may_not_pull(models_world: World
                                                                      ) -> None:
    w = models_world
    family = uniq("fam")
    team, other = w.api.create_namespace(uniq("team")), w.api.create_namespace(uniq("other"))
    member = w.new_user()
    w.api.set_member(team, member[0], "reader")
    weights = safetensors([tensor("w", "F32", [16])]).data
    digests = {}
    for ns in (team, other):
        m = modelpack([file_layer(weights, WEIGHT_RAW, "w.safetensors")], name=f"{ns}-model",
                      family=family, paramSize="1B")
        push_image(w.reg, f"{ns}/model", "v1", w.admin, m)
        digests[ns] = m.digest
    admin_api, member_api = w.api, w.api_as(member)

    def visible(api) -> set[str]:
        return {m["repository"] for m in api.ok("GET", "models", params={"q": f"family={family}"}
                                                )["models"]}

    deadline = time.monotonic() + TIMEOUT
    while visible(admin_api) != {f"{team}/model", f"{other}/model"}:
        assert time.monotonic() < deadline, "the models were not indexed in time"
        time.sleep(0.2)
    assert visible(member_api) == {f"{team}/model"}
    r = member_api("GET", f"models/{other}/model/{digests[other]}")
    assert r.status_code == 403, describe(r)
    assert r.json()["errors"][0]["code"] == "DENIED"
    r = member_api("GET", f"models/{other}/model/{digests[other]}/files")
    assert r.status_code == 403, describe(r)
    listed = member_api.ok("GET", f"models/{team}/model/{digests[team]}/files")
    assert [f["path"] for f in listed["files"]] == ["w.safetensors"]
    r = call("GET", f"{w.reg.url}/api/v1/models", params={"q": f"family={family}"})
    assert r.status_code == 401, describe(r)
