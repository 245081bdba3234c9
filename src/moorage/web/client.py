"""The client's address: the socket peer, or what trusted proxies say in X-Forwarded-For; and
the scheme and host a reverse proxy received (X-Forwarded-Proto/Host) when told to trust them."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..config import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(value: str) -> IPAddress | None:
    """An address from one X-Forwarded-For entry (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`)."""
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[IPNetwork]
) -> str | None:
    """The rightmost X-Forwarded-For hop that is not a trusted proxy, when the peer is one.

    Entries left of the first untrusted hop are the client's own claims, so they are ignored;
    an entry that is not an address ends the walk at the last trusted hop.
    """
    if peer is None or not proxies or not forwarded_for:
        return peer
    current = _parse(peer)
    if current is None or not _trusted(current, proxies):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, proxies):
            break
    return str(current)


def client_address_middleware(proxies: Sequence[IPNetwork]) -> Middleware:
    """A middleware that makes `request.remote` the resolved client address everywhere."""

    @web.middleware
    async def resolve(request: web.Request, handler):  # type: ignore[no-untyped-def]
        forwarded = request.headers.getall("X-Forwarded-For", [])
        if proxies and forwarded:
            remote = client_address(request.remote, forwarded, proxies)
            if remote is not None and remote != request.remote:
                request = request.clone(remote=remote)
        return await handler(request)

    return resolve


def forwarded_origin_middleware(proxies: Sequence[IPNetwork]) -> Middleware:
    """A middleware that makes `request.scheme`/`request.host` what X-Forwarded-Proto/Host say,
    from any peer when `proxies` is empty, else only from a peer in them."""

    @web.middleware
    async def origin(request: web.Request, handler):  # type: ignore[no-untyped-def]
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        if (proto or host) and _from_proxy(request, proxies):
            changes: dict[str, str] = {}
            if proto in ("http", "https"):
                changes["scheme"] = proto
            if host and "/" not in host and " " not in host:
                changes["host"] = host
            if changes:
                request = request.clone(**changes)  # type: ignore[arg-type]
        return await handler(request)

    return origin


def _from_proxy(request: web.Request, proxies: Sequence[IPNetwork]) -> bool:
    if not proxies:
        return True
    peer = request.transport.get_extra_info("peername") if request.transport else None
    address = _parse(str(peer[0])) if isinstance(peer, tuple) and peer else None
    return address is not None and _trusted(address, proxies)
