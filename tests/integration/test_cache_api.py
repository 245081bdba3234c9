"""The management API of upstreams and caches (/api/v1/upstreams, /api/v1/caches): server
admins only, the services' checks as the spec's errors, secrets never shown."""

from __future__ import annotations

from pathlib import Path

from support.http import call
from support.servers import start_local

PASSWORD = "cache-admin-password"


def test_admins_manage_upstreams_and_caches_over_the_api(tmp_path: Path) -> None:
    server = start_local(tmp_path / "data", "--workers", "1", auth=True,
                         MOORAGE_ADMIN_PASSWORD=PASSWORD)
    admin, api = ("admin", PASSWORD), server.url + "/api/v1"
    try:
        r = call("POST", api + "/upstreams", auth=admin, json={
            "name": "hubup", "url": "https://registry.example", "username": "me",
            "password": "s3cret-pass"})
        assert r.status_code == 201, r.text
        assert (r.json()["name"], r.json()["auth"], r.json()["username"]) == (
            "hubup", "basic", "me")
        listed = call("GET", api + "/upstreams", auth=admin)
        assert [u["name"] for u in listed.json()["upstreams"]] == ["hubup"]
        assert "s3cret-pass" not in listed.text and "secret" not in listed.json()["upstreams"][0]
        r = call("POST", api + "/upstreams", auth=admin, json={"name": "bad", "url": 5})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "UNSUPPORTED", r.text
        r = call("POST", api + "/upstreams", auth=admin,
                 json={"name": "hubup", "url": "https://other.example"})
        assert r.status_code == 409, r.text

        r = call("POST", api + "/caches", auth=admin, json={
            "name": "hub", "upstream": "hubup", "namespace": "hub", "revalidate": 60})
        assert r.status_code == 201, r.text
        assert r.json() == {"name": "hub", "namespace": "hub", "upstream": "hubup",
                            "upstream_url": "https://registry.example", "revalidate": 60.0}
        r = call("POST", api + "/caches", auth=admin,
                 json={"name": "other", "upstream": "nowhere", "namespace": "x"})
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN", r.text
        r = call("POST", api + "/caches", auth=admin,
                 json={"name": "two", "upstream": "hubup", "namespace": "y",
                       "revalidate": "10m"})
        assert r.status_code == 400, r.text
        assert call("GET", api + "/caches", auth=admin).json()["caches"][0]["name"] == "hub"
        # an upstream a cache uses is kept
        assert call("DELETE", api + "/upstreams/hubup", auth=admin).status_code == 409

        r = call("POST", api + "/users", auth=admin,
                 json={"name": "dev", "password": "dev-password-1"})
        assert r.status_code == 201, r.text
        dev = ("dev", "dev-password-1")
        for method, path in (("GET", "/caches"), ("GET", "/upstreams"),
                             ("DELETE", "/caches/hub")):
            r = call(method, api + path, auth=dev)
            assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED", r.text
        assert call("GET", api + "/caches").status_code == 401

        assert call("DELETE", api + "/caches/hub", auth=admin).status_code == 204
        assert call("DELETE", api + "/caches/hub", auth=admin).status_code == 404
        assert call("DELETE", api + "/upstreams/hubup", auth=admin).status_code == 204
        assert call("GET", api + "/upstreams", auth=admin).json() == {"upstreams": []}
    finally:
        server.stop()
