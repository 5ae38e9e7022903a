"""Where a webhook may go (SSRF): http(s) only, and never to a loopback, private, link-local,
site-local, reserved or multicast address, nor to an IPv6 address that embeds one (IPv4-mapped,
6to4, NAT64), unless REFUNDS_WEBHOOK_ALLOW_PRIVATE_TARGETS. Checked when an endpoint is saved,
and at every connection of a delivery on the address it connects to (`webhooks.transport`):
the name is resolved once and the vetted address is the one connected to, so a DNS answer that
changes between the check and the connection (rebinding) cannot send a delivery inside."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from refunds.domain.errors import WebhookTargetRefused

SCHEMES = ("http", "https")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges that carry an IPv4 address: judged by the address they carry.
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: `::ffff:a.b.c.d`, 6to4 `2002:AABB:CCDD::`,
    NAT64 `64:ff9b::a.b.c.d` (the well-known prefix; the local-use one is refused whole)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in SIX_TO_FOUR:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refused_address(address: str) -> bool:
    """True for an address no delivery may connect to (an IPv6 scope id is not the address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return _refused_ip(embedded_ipv4(ip) or ip)


def _refused_ip(ip: IPAddress) -> bool:
    # `is_global` alone misses some: Python 3.11 calls 6to4, NAT64 and site-local global.
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and (ip.is_site_local or ip in SITE_LOCAL))
    )


def check_scheme(url: str) -> tuple[str, int]:
    """The URL's host and port; refused unless http(s) with a host."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed `[` of an IPv6 host
        raise WebhookTargetRefused(f"{url!r} is not a URL") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise WebhookTargetRefused(f"{url!r}: only http(s) URLs with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookTargetRefused(f"{url!r}: the port is not a number") from None
    return parts.hostname, port


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses, in the resolver's order (an IP literal is its own)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise WebhookTargetRefused(f"{host!r} does not resolve") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def vetted_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses a delivery to `host` may connect to, resolved once. Refused whole when any
    is refused: a name that answers a private address among public ones is not trusted."""
    addresses = await resolve(host, port)
    if allow_private:
        return addresses
    refused = [a for a in addresses if refused_address(a)]
    if refused:
        raise WebhookTargetRefused(
            f"{host!r} resolves to a loopback, private, link-local or reserved address "
            f"({refused[0]}); set REFUNDS_WEBHOOK_ALLOW_PRIVATE_TARGETS to allow it"
        )
    return addresses


async def check_target(url: str, allow_private: bool) -> None:
    """Raise `WebhookTargetRefused` for a URL a delivery must not go to."""
    host, port = check_scheme(url)
    if not allow_private:
        await vetted_addresses(host, port, allow_private)
