"""Where a webhook may go (SSRF): http(s) only, and never to a loopback, private, link-local,
reserved or multicast address unless REFUNDS_WEBHOOK_ALLOW_PRIVATE_TARGETS. Checked when an
endpoint is saved and again before every try (DNS may answer otherwise by then)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from refunds.domain.errors import WebhookTargetRefused

SCHEMES = ("http", "https")


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is not the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_reserved


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


async def check_target(url: str, allow_private: bool) -> None:
    """Raise `WebhookTargetRefused` for a URL a delivery must not go to."""
    host, port = check_scheme(url)
    if allow_private:
        return
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            raise WebhookTargetRefused(f"{host!r} does not resolve") from None
        addresses = [str(info[4][0]) for info in infos]
    refused = [a for a in addresses if _refused_address(a)]
    if refused:
        raise WebhookTargetRefused(
            f"{host!r} resolves to a loopback, private, link-local or reserved address "
            f"({refused[0]}); set REFUNDS_WEBHOOK_ALLOW_PRIVATE_TARGETS to allow it"
        )
