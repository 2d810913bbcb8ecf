"""Where webhooks may go: public addresses only, unless an admin allows private ones.

An endpoint URL that names, or resolves to, a loopback, link-local (the cloud metadata service
at 169.254.169.254 among them), private, shared, multicast, reserved or unspecified address is
refused when it is registered, and again at each delivery, where the name is resolved anew and
the request is sent to the very address that was checked (so a name that is re-pointed at an
internal address after registration, "DNS rebinding", reaches nothing).
``BATON_WEBHOOK_ALLOW_PRIVATE=1`` lifts the rule (a receiver on the same host or network).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Names that are internal whatever they resolve to here.
INTERNAL_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal"})
RESOLVE_TIMEOUT = 5.0


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "is a loopback address"
    if address.is_link_local:
        return "is a link-local address (the cloud metadata service lives there)"
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED):
        return "is a private address"
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return "is not a public address"
    return None


_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not is_private


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an empty list when it does not resolve)."""
    if (literal := _literal(host)) is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return []
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _internal(host: str) -> str | None:
    if host in INTERNAL_NAMES or host.endswith((".localhost", ".internal")):
        return f"names an internal host ({host})"
    return None


def _first_refusal(addresses: list[IPAddress]) -> str | None:
    for address in addresses:
        if (reason := refusal(address)) is not None:
            return f"{reason} ({address})"
    return None


async def url_refusal(url: str, allow_private: bool) -> str | None:
    """Why ``url`` may not be an endpoint (checked at registration), or None. A name that
    does not resolve yet is accepted: each delivery checks again."""
    if allow_private:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    reason = _internal(host) or _first_refusal(await resolve(host, _port(parts)))
    return f"{reason}; set BATON_WEBHOOK_ALLOW_PRIVATE=1 to allow it" if reason else None


@dataclass(frozen=True)
class Target:
    """Where to send one delivery: the URL with the checked address in place of the name,
    and the name for the ``Host`` header and TLS (SNI and certificate check)."""

    url: str
    host_header: str
    server_name: str | None


async def pin(url: str, allow_private: bool) -> Target:
    """Resolve ``url``'s host now and return the request target pinned to a public address;
    ``ValueError`` naming the reason when there is none. With ``allow_private`` the URL is
    used as it is."""
    parts = urlsplit(url)
    if allow_private:
        return Target(url, parts.netloc, None)
    host = (parts.hostname or "").rstrip(".").lower()
    if (reason := _internal(host)) is not None:
        raise ValueError(f"{host} {reason}")
    addresses = await resolve(host, _port(parts))
    if not addresses:
        raise ValueError(f"{host} does not resolve")
    # Every address is checked, then the first is used: the request cannot go elsewhere.
    if (reason := _first_refusal(addresses)) is not None:
        raise ValueError(f"{host} {reason}")
    address = addresses[0]
    shown = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    pinned = parts._replace(netloc=netloc).geturl()
    server_name = host if parts.scheme == "https" and _literal(host) is None else None
    return Target(pinned, parts.netloc, server_name)
