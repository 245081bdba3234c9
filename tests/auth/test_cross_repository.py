"""Content of a private namespace does not leak through other repositories: blob GET by
digest, cross-repository mounts, monolithic uploads, manifests referring to foreign blobs,
upload sessions of other repositories, and the catalog."""

from __future__ import annotations

import os
from urllib.parse import urljoin

import pytest
from support.http import Bearer, add_query, call, describe
from support.oci import Blob, assert_error, digest_of, make_image, v2

from .authkit import (
    all_scope,
    assert_no_event,
    assert_unauthorized,
    await_event,
    eventually,
    get_blob,
    pull_scope,
    push_blob,
    push_image,
    push_scope,
    put_manifest,
    start_upload,
    token,
    uniq,
)


@pytest.fixture
def setup(world):
    """A private namespace holding a secret blob, and a public one where `dev` may push."""
    api = world.api
    priv = api.create_namespace(visibility="private")
    pub = api.create_namespace(visibility="public")
    (dev,) = world.new_users(1)
    api.set_member(pub, dev[0], "developer")
    data = b"secret weights " + os.urandom(64)
    r = push_blob(world.reg, f"{priv}/repo", data, world.admin)
    assert r.status_code == 201, describe(r)
    return priv, pub, dev, data, digest_of(data)


def test_private_blob_cannot_be_read_through_a_public_repository(world, setup):
    reg = world.reg
    priv, pub, dev, data, digest = setup
    push_image(reg, f"{pub}/repo", "v1", dev)  # the public repository exists and has content
    anon = Bearer(token(reg, None, pull_scope(f"{pub}/repo")))
    for auth in (dev, anon, Bearer(token(reg, dev, push_scope(f"{pub}/repo"))), world.admin):
        for method in ("GET", "HEAD"):
            r = get_blob(reg, f"{pub}/repo", digest, auth, method=method)
            assert_error(r, 404, "BLOB_UNKNOWN")
            assert data not in r.content
    # nor through the caller's own personal namespace
    push_image(reg, f"{dev[0]}/mine", "v1", dev)
    assert_error(get_blob(reg, f"{dev[0]}/mine", digest, dev), 404, "BLOB_UNKNOWN")
    # while the owner reads it where it is
    assert get_blob(reg, f"{priv}/repo", digest, world.admin).content == data


def test_mount_from_a_source_the_caller_cannot_read_opens_an_upload(world, setup):
    reg = world.reg
    priv, pub, dev, _data, digest = setup
    target = f"{pub}/repo"
    # Basic auth, with `from`
    r = start_upload(reg, target, dev, mount=digest, **{"from": f"{priv}/repo"})
    assert r.status_code == 202, describe(r)
    assert r.headers.get("Location"), describe(r)
    # a token for the target plus (not granted) pull on the source
    tok = Bearer(token(reg, dev, push_scope(target), pull_scope(f"{priv}/repo")))
    r = start_upload(reg, target, tok, mount=digest, **{"from": f"{priv}/repo"})
    assert r.status_code == 202, describe(r)
    # without `from`
    r = start_upload(reg, target, dev, mount=digest)
    assert r.status_code == 202, describe(r)
    r = start_upload(reg, target, tok, mount=digest)
    assert r.status_code == 202, describe(r)
    # nothing was linked
    assert_error(get_blob(reg, target, digest, dev), 404, "BLOB_UNKNOWN")
    assert_error(get_blob(reg, target, digest, world.admin), 404, "BLOB_UNKNOWN")
    # the upload session that was opened is an ordinary, empty one
    loc = urljoin(r.url, r.headers["Location"])
    s = call("GET", loc, auth=tok)
    assert s.status_code == 204, describe(s)


def test_refused_mount_is_not_audited_as_a_mount_or_push(world, setup):
    """A mount that falls back to an upload session moved no blob: the audit log must not
    say the secret digest was mounted or pushed into the public repository."""
    reg = world.reg
    priv, pub, dev, _data, digest = setup
    target = f"{pub}/{uniq('fb')}"
    r = start_upload(reg, target, dev, mount=digest, **{"from": f"{priv}/repo"})
    assert r.status_code == 202, describe(r)
    # the refused read of the source is audited ...
    await_event(
        world.api,
        {"repository": f"{priv}/repo"},
        action="access.pull",
        outcome="denied",
        actor=dev[0],
    )
    # ... and nothing claims the blob arrived in the target
    assert_no_event(world.api, {"repository": target}, reference=digest, outcome="success")


def test_mount_with_read_access_links_the_blob(world, setup):
    reg = world.reg
    priv, pub, dev, data, digest = setup
    world.api.set_member(priv, dev[0], "reader")
    # with Basic (a repository dev was not refused on before: no cached decision)
    t1 = f"{pub}/{uniq('m')}"
    r = start_upload(reg, t1, dev, mount=digest, **{"from": f"{priv}/repo"})
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    assert get_blob(reg, t1, digest, dev).content == data
    # with a token carrying pull on the source
    t2 = f"{pub}/{uniq('m')}"
    tok = Bearer(token(reg, dev, push_scope(t2), pull_scope(f"{priv}/repo")))
    r = start_upload(reg, t2, tok, mount=digest, **{"from": f"{priv}/repo"})
    assert r.status_code == 201, describe(r)
    # a token without pull on the source, of a caller who could read it: challenged for both
    # scopes (test_mount_challenge_then_wider_token_mounts follows that through)
    t3 = f"{pub}/{uniq('m')}"
    tok3 = Bearer(token(reg, dev, push_scope(t3)))
    r = start_upload(reg, t3, tok3, mount=digest, **{"from": f"{priv}/repo"})
    assert assert_unauthorized(r)["scope"] == f"{push_scope(t3)} {pull_scope(f'{priv}/repo')}"
    # without `from`: any repository the caller may read can lend the blob
    t4 = f"{pub}/{uniq('m')}"
    r = eventually(lambda: _status(start_upload(reg, t4, dev, mount=digest), 201))
    assert get_blob(reg, t4, digest, dev).content == data


def test_mount_challenge_then_wider_token_mounts(world, setup):
    """Distribution's sequence: a token scoped to the target only gets 401 naming both scopes;
    the client asks the realm for exactly those, and the mount with the new token is a 201."""
    reg = world.reg
    priv, pub, dev, data, digest = setup
    world.api.set_member(priv, dev[0], "reader")
    source, target = f"{priv}/repo", f"{pub}/{uniq('c')}"
    narrow = Bearer(token(reg, dev, push_scope(target)))
    r = start_upload(reg, target, narrow, mount=digest, **{"from": source})
    params = assert_unauthorized(r)
    assert params == {
        "realm": f"{reg.url}/token",
        "service": "moorage",
        "scope": f"repository:{target}:pull,push repository:{source}:pull",
        "error": "insufficient_scope",
    }, describe(r)
    assert get_blob(reg, target, digest, world.admin).status_code == 404  # nothing linked yet
    # what a client does with the challenge: one token request with its scopes
    t = call("GET", params["realm"], auth=dev,
             params=[("service", params["service"])]
             + [("scope", s) for s in params["scope"].split(" ")])
    assert t.status_code == 200, describe(t)
    assert set(t.json()["scope"].split(" ")) == {push_scope(target), pull_scope(source)}
    wide = Bearer(t.json()["token"])
    r = start_upload(reg, target, wide, mount=digest, **{"from": source})
    assert r.status_code == 201, describe(r)
    assert r.headers.get("Docker-Content-Digest") == digest, describe(r)
    assert get_blob(reg, target, digest, wide).content == data
    await_event(world.api, {"repository": target}, action="blob.mount", reference=digest,
                actor=dev[0], outcome="success")


def test_mount_challenge_for_a_robot_token(world, setup):
    """A robot with pull on the source and push on the target follows the same challenge."""
    reg = world.reg
    priv, pub, _dev, _data, digest = setup
    robot, secret, _ = world.api.create_robot({priv: ["pull"], pub: ["pull", "push"]})
    source, target = f"{priv}/repo", f"{pub}/{uniq('r')}"
    r = start_upload(reg, target, Bearer(token(reg, (robot, secret), push_scope(target))),
                     mount=digest, **{"from": source})
    assert assert_unauthorized(r)["scope"] == f"{push_scope(target)} {pull_scope(source)}"
    wide = Bearer(token(reg, (robot, secret), push_scope(target), pull_scope(source)))
    r = start_upload(reg, target, wide, mount=digest, **{"from": source})
    assert r.status_code == 201, describe(r)


def test_anonymous_mount_is_challenged_for_the_target_only(world, setup):
    """Anonymous callers may not push: the challenge names the target, never the source."""
    reg = world.reg
    priv, pub, _dev, _data, digest = setup
    r = start_upload(reg, f"{pub}/repo", None, mount=digest, **{"from": f"{priv}/repo"})
    assert assert_unauthorized(r)["scope"] == push_scope(f"{pub}/repo")
    anon = Bearer(token(reg, None, pull_scope(f"{pub}/repo"), pull_scope(f"{priv}/repo")))
    r = start_upload(reg, f"{pub}/repo", anon, mount=digest, **{"from": f"{priv}/repo"})
    assert assert_unauthorized(r)["scope"] == push_scope(f"{pub}/repo")


def _status(r, status):
    assert r.status_code == status, describe(r)
    return r


def test_upload_cannot_claim_a_foreign_blob_without_its_bytes(world, setup):
    reg = world.reg
    _priv, pub, dev, data, digest = setup
    target = f"{pub}/repo"
    # monolithic POST with the digest but not the bytes
    r = call(
        "POST",
        add_query(v2(reg, f"{target}/blobs/uploads/"), {"digest": digest}),
        auth=dev,
        data=b"",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code != 201 and r.status_code < 500, describe(r)
    # an upload closed with the digest and no (or other) bytes
    for body in (b"", b"other bytes"):
        s = start_upload(reg, target, dev)
        loc = urljoin(s.url, s.headers["Location"])
        r = call(
            "PUT",
            add_query(loc, {"digest": digest}),
            auth=dev,
            data=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert_error(r, 400, "DIGEST_INVALID")
    assert_error(get_blob(reg, target, digest, dev), 404, "BLOB_UNKNOWN")
    # a manifest referring to the foreign blob is refused
    m = make_image(layer_blobs=[Blob(data, "application/vnd.oci.image.layer.v1.tar")])
    r = push_blob(reg, target, m.blobs[0].data, dev)  # the config only
    assert r.status_code == 201, describe(r)
    r = put_manifest(reg, target, "sneaky", m, dev)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(get_blob(reg, target, digest, dev), 404, "BLOB_UNKNOWN")


def test_upload_session_of_another_repository_is_unknown(world, setup):
    reg = world.reg
    priv, pub, dev, data, digest = setup
    s = start_upload(reg, f"{priv}/repo", world.admin)
    assert s.status_code == 202, describe(s)
    upload_id = s.headers["Location"].rstrip("/").split("/")[-1].split("?")[0]
    other = v2(reg, f"{pub}/repo/blobs/uploads/{upload_id}")
    for method in ("GET", "PATCH", "DELETE"):
        r = call(
            method,
            other,
            auth=dev,
            data=b"x" if method == "PATCH" else None,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = call(
        "PUT",
        add_query(other, {"digest": digest}),
        auth=dev,
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    # and the session is still the admin's, unharmed
    loc = urljoin(s.url, s.headers["Location"])
    assert call("GET", loc, auth=world.admin).status_code == 204


# ----------------------------------------------------------------------------------------------
# catalog


def catalog(reg, auth, **params) -> list[str]:
    url = v2(reg, "_catalog")
    names: list[str] = []
    if params:
        url = add_query(url, params)
    for _ in range(200):
        r = call("GET", url, auth=auth)
        assert r.status_code == 200, describe(r)
        names += r.json()["repositories"] or []
        link = r.headers.get("Link")
        if not link:
            return names
        url = urljoin(r.url, link.split(";")[0].strip("<> "))
    raise AssertionError("catalog pagination did not end")


def test_catalog_lists_only_pullable_repositories(world):
    reg = world.reg
    team_app, pub_app = f"{world.team}/app", f"{world.pub}/app"
    hidden = world.api.create_namespace(visibility="private")
    push_image(reg, f"{hidden}/app", "v1", world.admin)
    robot, secret, _ = world.api.create_robot({world.team: ["pull"]})

    def as_token(creds):
        return Bearer(token(reg, creds, "registry:catalog:*"))

    admin_view = catalog(reg, as_token(world.admin))
    assert {team_app, pub_app, f"{hidden}/app"} <= set(admin_view), admin_view
    for creds, sees_team in (
        (world.users["reader"], True),
        ((robot, secret), True),
        (world.outsider, False),
    ):
        for auth in (as_token(creds), creds):  # token and Basic
            view = catalog(reg, auth)
            assert pub_app in view, view
            assert (team_app in view) is sees_team, view
            assert f"{hidden}/app" not in view, view
            # page by page too
            assert catalog(reg, auth, n=1) == view
            assert view == sorted(view), view


@pytest.mark.parametrize("who", ["anonymous", "user-without-catalog-scope"])
def test_catalog_needs_the_catalog_scope(world, who):
    """The catalog is `registry:catalog:*`: a token that does not carry it (an anonymous one
    never does) gets the challenge, not a listing."""
    reg = world.reg
    creds = None if who == "anonymous" else world.users["reader"]
    tok = Bearer(token(reg, creds, pull_scope(f"{world.pub}/app")))
    r = call("GET", v2(reg, "_catalog"), auth=tok)
    params = assert_unauthorized(r)
    assert params.get("scope") == "registry:catalog:*", describe(r)
    assert f"{world.pub}/app" not in r.text


def test_tag_listing_follows_pull_rights(world):
    reg = world.reg
    for auth, ok in (
        (world.users["reader"], True),
        (world.outsider, False),
        (Bearer(token(reg, world.outsider, all_scope(f"{world.team}/app"))), False),
    ):
        r = call("GET", v2(reg, f"{world.team}/app/tags/list"), auth=auth)
        if ok:
            assert r.status_code == 200 and r.json()["tags"] == ["v1"], describe(r)
        else:
            assert_error(r, 403, "DENIED")
            assert "v1" not in r.text
