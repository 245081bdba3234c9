"""Cache namespaces for server admins (`moorage cache add|list|remove`), and which cache, if
any, a repository or a `?ns=` host belongs to (a per-process snapshot refreshed each second)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..auth.authorizer import SERVER, Action, Authorizer
from ..auth.scopes import namespace_of
from ..oci.errors import NameTaken, RegistryError
from ..registry.upstreams import UpstreamConflict, UpstreamNotFound, check_name, host_of

if TYPE_CHECKING:
    from ..auth.identity import Principal
    from ..metadata.uow import Database

NAMESPACE_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
REFRESH_SECONDS = 1.0
DOCKER_HUB_HOSTS = ("registry-1.docker.io", "index.docker.io", "registry.hub.docker.com")


class CacheNotFound(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "no such cache"


@dataclass(frozen=True, slots=True)
class CacheTarget:
    """One cache namespace as the request path uses it."""

    name: str
    namespace: str
    upstream_id: int
    upstream_host: str
    revalidate: float

    def upstream_repository(self, repository: str) -> str:
        """`hub/library/alpine` → `library/alpine`."""
        return repository[len(self.namespace) + 1:]


class CacheService:
    """Administration of cache namespaces, and the lookup of the one a repository is in."""

    def __init__(self, database: Database, authorizer: Authorizer) -> None:
        self.database = database
        self.authorizer = authorizer
        self._by_namespace: dict[str, CacheTarget] = {}
        self._by_host: dict[str, CacheTarget] = {}
        self._fresh_until = 0.0

    def _require(self, actor: Principal, doing: str) -> None:
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, doing=doing)

    def add(self, actor: Principal, name: str, upstream: str, namespace: str,
            revalidate: float = 600.0) -> dict[str, Any]:
        """Map `namespace` to `upstream`: `namespace/x` is pulled through from upstream `x`."""
        self._require(actor, "add a cache")
        check_name(name, "cache")
        if not NAMESPACE_RE.match(namespace):
            raise RegistryError(f"invalid namespace {namespace!r}: a repository's first path "
                                "component")
        if revalidate < 0:
            raise RegistryError("--revalidate must be 0 or more")
        with self.database.write() as uow:
            up = uow.cache.upstream(upstream)
            if up is None:
                raise UpstreamNotFound(f"no upstream named {upstream!r}: add it with "
                                       "`moorage upstream add`")
            if uow.cache.namespace_has_repositories(namespace):
                raise UpstreamConflict(f"namespace {namespace!r} holds pushed repositories: a "
                                       "cache needs a namespace of its own")
            try:
                uow.cache.add_cache({"name": name, "namespace": namespace,
                                     "upstream_id": up["id"], "revalidate": revalidate,
                                     "created_at": time.time()})
            except NameTaken:
                raise UpstreamConflict(f"a cache named {name!r} or of namespace {namespace!r} "
                                       "exists already") from None
        self._fresh_until = 0.0
        return {"name": name, "namespace": namespace, "upstream": upstream,
                "upstream_url": up["url"], "revalidate": revalidate}

    def list_caches(self, actor: Principal) -> list[dict[str, Any]]:
        """Every cache namespace and its upstream."""
        self._require(actor, "list caches")
        with self.database.read() as uow:
            return [{"name": r["name"], "namespace": r["namespace"], "upstream": r["upstream"],
                     "upstream_url": r["upstream_url"], "revalidate": r["revalidate"]}
                    for r in uow.cache.caches()]

    def remove(self, actor: Principal, name: str) -> None:
        """Stop caching (what was cached stays, as hosted content, until removed or GC'd)."""
        self._require(actor, "remove a cache")
        with self.database.write() as uow:
            if not uow.cache.remove_cache(name):
                raise CacheNotFound(f"no cache named {name!r}")
        self._fresh_until = 0.0

    # -- the request path ---------------------------------------------------------------------

    def _refresh(self) -> None:
        with self.database.read() as uow:
            rows = uow.cache.caches()
        targets = [CacheTarget(r["name"], r["namespace"], r["upstream_id"],
                               host_of(r["upstream_url"]), float(r["revalidate"])) for r in rows]
        self._by_namespace = {t.namespace: t for t in targets}
        self._by_host = {t.upstream_host: t for t in targets}
        for t in targets:  # containerd names Docker Hub `docker.io`, its API host differs
            if t.upstream_host in DOCKER_HUB_HOSTS:
                self._by_host.setdefault("docker.io", t)
        self._fresh_until = time.monotonic() + REFRESH_SECONDS

    async def _current(self) -> None:
        if time.monotonic() >= self._fresh_until:
            if self.database.reads_inline:
                self._refresh()
            else:
                await asyncio.to_thread(self._refresh)

    async def target(self, repository: str) -> CacheTarget | None:
        """The cache `repository` is in (None: a hosted repository)."""
        await self._current()
        if "/" not in repository:
            return None
        return self._by_namespace.get(namespace_of(repository))

    def holds(self, repository: str) -> bool:
        """Whether `repository` is in a cache namespace (a fresh read: for jobs, not requests)."""
        self._refresh()
        return "/" in repository and namespace_of(repository) in self._by_namespace

    async def mirror(self, host: str, name: str) -> str:
        """The repository a containerd mirror request for `name` from `host` (`?ns=`) means:
        `name` inside the cache of that upstream host, or `name` itself when there is none."""
        await self._current()
        target = self._by_host.get(host.lower())
        return f"{target.namespace}/{name}" if target is not None else name
