"""Upstream registries for server admins: name, URL, TLS options and credentials sealed at rest
(auth/sealing.py); and the client of one (what the cache and replication talk to)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..auth.authorizer import SERVER, Action, Authorizer
from ..oci.errors import NameTaken, RegistryError

if TYPE_CHECKING:
    from ..auth.identity import Principal
    from ..auth.sealing import Sealer
    from ..metadata.uow import Database
    from ..upstream import UpstreamClient

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class UpstreamNotFound(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "no such upstream"


class UpstreamConflict(RegistryError):
    code, status, default_message = "DENIED", 409, "an upstream of that name exists"


def check_name(name: str, what: str) -> str:
    """A lowercase name of at most 64 characters, else a RegistryError saying so."""
    if not NAME_RE.match(name):
        raise RegistryError(f"invalid {what} name {name!r}: lowercase letters, digits, '.', "
                            "'_', '-', at most 64")
    return name


def check_url(url: str) -> str:
    """An http(s) URL with a host (a registry's base, no path), else a RegistryError."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok, parts = False, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise RegistryError(f"upstream URL must be http:// or https:// with a host, got {url!r}")
    return url.rstrip("/")


def host_of(url: str) -> str:
    """`host[:port]` of an upstream URL (what containerd sends as `?ns=`)."""
    return urlsplit(url).netloc.rpartition("@")[2].lower()


def public(row: dict[str, Any]) -> dict[str, Any]:
    """An upstream as admins see it: never its secret."""
    return {"name": row["name"], "url": row["url"], "auth": row["auth"],
            "username": row["username"], "ca_file": row["ca_file"],
            "insecure": bool(row["insecure"]), "created_at": row["created_at"],
            "created_by": row["created_by"]}


class UpstreamService:
    """Add, list and remove upstreams (server admins only); build a client of one."""

    def __init__(self, database: Database, authorizer: Authorizer,
                 sealer: Callable[[], Sealer], connect_timeout: float = 30.0,
                 idle_timeout: float = 120.0) -> None:
        self.database = database
        self.authorizer = authorizer
        self._sealer = sealer
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout

    def _require(self, actor: Principal, doing: str) -> None:
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, doing=doing)

    def add(self, actor: Principal, name: str, url: str, *, username: str | None = None,
            password: str | None = None, token: str | None = None, ca_file: str | None = None,
            insecure: bool = False) -> dict[str, Any]:
        """Register an upstream; a password or token is sealed before it is stored."""
        self._require(actor, "add an upstream")
        check_name(name, "upstream")
        url = check_url(url)
        if token and (username or password):
            raise RegistryError("give either a token or a username and password, not both")
        if bool(username) != bool(password):
            raise RegistryError("a username needs a password (--password-stdin) and back")
        auth, secret = "none", None
        if token:
            auth, secret = "token", self._sealer().seal(token.encode())
        elif password:
            auth, secret = "basic", self._sealer().seal(password.encode())
        values = {"name": name, "url": url, "auth": auth, "username": username or None,
                  "secret": secret, "ca_file": ca_file, "insecure": insecure,
                  "created_at": time.time(), "created_by": actor.name}
        try:
            with self.database.write() as uow:
                uow.cache.add_upstream(values)
                row = uow.cache.upstream(name)
        except NameTaken:
            raise UpstreamConflict(f"an upstream named {name!r} exists already") from None
        assert row is not None
        return public(row)

    def list_upstreams(self, actor: Principal) -> list[dict[str, Any]]:
        """Every upstream (without secrets)."""
        self._require(actor, "list upstreams")
        with self.database.read() as uow:
            return [public(r) for r in uow.cache.upstreams()]

    def remove(self, actor: Principal, name: str) -> None:
        """Forget an upstream no cache namespace uses."""
        self._require(actor, "remove an upstream")
        with self.database.write() as uow:
            row = uow.cache.upstream(name)
            if row is None:
                raise UpstreamNotFound(f"no upstream named {name!r}")
            users = uow.cache.caches_of(row["id"])
            if users:
                raise UpstreamConflict(f"upstream {name!r} is used by cache {users[0]!r}: "
                                       "remove that first")
            replicating = uow.replication.rules_of_upstream(row["id"])
            if replicating:
                raise UpstreamConflict(f"upstream {name!r} is used by replication rule "
                                       f"{replicating[0]!r}: remove that first")
            uow.cache.remove_upstream(row["id"])

    def row(self, upstream_id: int) -> dict[str, Any] | None:
        """The stored row of an upstream (its secret sealed)."""
        with self.database.read() as uow:
            return uow.cache.upstream_by_id(upstream_id)

    def client(self, row: dict[str, Any], **options: Any) -> UpstreamClient:
        """A client of the upstream `row` describes, with its credentials unsealed."""
        from ..upstream import Basic, Credentials, Token, UpstreamClient

        credentials: Credentials | None = None
        if row["auth"] != "none" and row["secret"]:
            plain = self._sealer().unseal(row["secret"]).decode()
            credentials = (Token(plain) if row["auth"] == "token"
                           else Basic(row["username"] or "", plain))
        options.setdefault("connect_timeout", self.connect_timeout)
        options.setdefault("idle_timeout", self.idle_timeout)
        return UpstreamClient(row["url"], credentials, ca_file=row["ca_file"],
                              insecure=bool(row["insecure"]), **options)
