"""The HTTP client of webhook deliveries: it connects only to the address it vetted.

httpx resolves a URL's host itself when it connects, after any check we made of it: a name
whose DNS answer changes between the two (rebinding) would send the delivery to an internal
address. Here the connection pool's network backend is ours: asked to connect to a host, it
resolves the name once (`targets.vetted_addresses`), refuses it if any address is refused, and
opens the TCP connection to a vetted address. Everything above TCP is unchanged: the request
keeps the hostname in its URL, so the Host header, the TLS SNI and the certificate check are
the hostname's."""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from refunds.domain.errors import WebhookTargetRefused
from refunds.webhooks.targets import vetted_addresses


class VettedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the vetted addresses of a host, in the resolver's order."""

    def __init__(self, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None):
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failed: Exception | None = None
        for address in await vetted_addresses(host, port, self.allow_private):
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        raise failed or httpcore.ConnectError(f"{host!r} has no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise WebhookTargetRefused("webhooks go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class VettedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a pool whose network backend is `VettedBackend`. No proxy from the
    environment (a proxy would resolve the name itself) and no redirects (the client's)."""

    def __init__(self, allow_private: bool, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        # httpx 0.28 takes no network backend: the pool it built is replaced by the same pool
        # over ours (httpx's defaults: 100 connections, 20 kept alive 5 s).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=VettedBackend(allow_private),
        )


def delivery_client(allow_private: bool, verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The client deliveries post with. Never follows redirects: a 3xx would be a second
    target, unvetted."""
    return httpx.AsyncClient(
        transport=VettedTransport(allow_private, verify), follow_redirects=False, trust_env=False
    )
