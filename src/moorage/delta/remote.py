"""The registry as the delta client sees it: the `_moorage.chunks` extension over the upstream
client (its Docker token auth and errors), plus what plain OCI offers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..upstream.client import UpstreamClient
from ..upstream.types import UpstreamError
from ..upstream.wire import read_limited

BATCH_TYPE = "application/vnd.moorage.chunks.v1"
EXTENSION = "_moorage.chunks"
IDS_PER_REQUEST = 50_000
MAX_JSON = 64 << 20


class Remote:
    """Delta calls for one registry."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client

    async def _json(self, method: str, path: str, repo: str, actions: str, body: Any,
                    ok: Sequence[int] = (200,)) -> Any:
        resp = await self.client.call(method, path, repo, actions, data=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json"}, ok=ok)
        try:
            return json.loads(await read_limited(resp, MAX_JSON, "answer"))
        finally:
            resp.release()

    async def has_extension(self) -> bool:
        """Whether the registry advertises the chunks extension (`Moorage-Extensions`)."""
        resp = await self.client.call("GET", "/v2/", None, "")
        resp.release()
        return "chunks/v1" in resp.headers.get("Moorage-Extensions", "").split(",")

    async def avg_chunk_size(self, default: int) -> int:
        """The registry's FastCDC target chunk size (from the discovery document)."""
        resp = await self.client.call("GET", "/v2/_oci/ext/discover", None, "")
        try:
            body = json.loads(await read_limited(resp, MAX_JSON, "discovery"))
        finally:
            resp.release()
        for ext in body.get("extensions", []):
            if ext.get("name") == EXTENSION:
                return int(ext.get("parameters", {}).get("avgChunkSize", default))
        return default

    async def missing(self, repo: str, ids: Sequence[str]) -> set[str]:
        """Those of `ids` the registry lacks."""
        out: set[str] = set()
        for i in range(0, len(ids), IDS_PER_REQUEST):
            body = await self._json("POST", f"/v2/{repo}/moorage/chunks/missing", repo,
                                    "pull,push", list(ids[i:i + IDS_PER_REQUEST]))
            out.update(body["missing"])
        return out

    async def store(self, repo: str, datas: Sequence[bytes]) -> list[str]:
        """Send one batch of chunks; the ids the registry computed."""
        head = json.dumps({"lengths": [len(d) for d in datas]}).encode() + b"\n"
        resp = await self.client.call("POST", f"/v2/{repo}/moorage/chunks", repo, "pull,push",
                                      data=b"".join([head, *datas]),
                                      headers={"Content-Type": BATCH_TYPE}, ok=(201,))
        try:
            ids: list[str] = json.loads(await read_limited(resp, MAX_JSON, "answer"))["ids"]
            return ids
        finally:
            resp.release()

    async def commit(self, repo: str, digest: str, recipe: Sequence[tuple[str, int]]) -> None:
        """Commit a blob from chunks the registry holds."""
        body = json.dumps({"chunks": [list(e) for e in recipe]}).encode()
        (await self.client.call("PUT", f"/v2/{repo}/moorage/recipes/{digest}", repo,
                                "pull,push", data=body, ok=(201,),
                                headers={"Content-Type": "application/json"})).release()

    async def recipe(self, repo: str, digest: str) -> list[tuple[str, int]] | None:
        """A stored blob's recipe, None when the registry has none."""
        try:
            resp = await self.client.call("GET", f"/v2/{repo}/moorage/recipes/{digest}", repo,
                                          "pull")
        except UpstreamError as exc:
            if exc.status in (404, 405):
                return None
            raise
        try:
            body = json.loads(await read_limited(resp, MAX_JSON, "recipe"))
        finally:
            resp.release()
        return [(str(c), int(n)) for c, n in body["chunks"]]

    async def fetch(self, repo: str, ids: Sequence[str]) -> list[bytes]:
        """The bytes of chunks, in order (each checked against its id by the caller)."""
        resp = await self.client.call("POST", f"/v2/{repo}/moorage/chunks/fetch", repo, "pull",
                                      data=json.dumps(list(ids)).encode(),
                                      headers={"Content-Type": "application/json"})
        try:
            head = json.loads(await resp.content.readuntil(b"\n"))
            return [await resp.content.readexactly(int(n)) for n in head["lengths"]]
        finally:
            resp.release()
