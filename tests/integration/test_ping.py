"""end-1: GET /v2/ (suite B `ping`; every suite A run starts with it)."""

from __future__ import annotations

from support.http import describe, http


def test_ping_returns_200_with_api_version_header(registry):
    r = http.get(f"{registry.url}/v2/")
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Docker-Distribution-API-Version") == "registry/2.0", describe(r)
