"""The deliveries' client connects to the address it vetted while TLS stays the hostname's: the
server hears the hostname as SNI and the certificate is checked against the hostname, not the
address connected to."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from refunds.domain.errors import WebhookTargetRefused
from refunds.webhooks.transport import delivery_client


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer[0])
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=subject == "ca", path_length=None), True)
    )
    if subject != "ca":  # the hostname only: no IP address in the certificate
        names = x509.SubjectAlternativeName([x509.DNSName("localhost")])
        builder = builder.add_extension(names, critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


def certificates(directory: Path) -> tuple[Path, Path, Path]:
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    ca = _cert("ca", ca_key, (ca_name, ca_key))
    server = _cert("localhost", server_key, (ca_name, ca_key))
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(server.public_bytes(pem))
    paths[2].write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@contextlib.asynccontextmanager
async def https_server(cert: Path, key: Path, heard_sni: list[str | None]) -> AsyncIterator[int]:
    """127.0.0.1:PORT answering 200 over TLS, recording the SNI each handshake names."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        heard_sni.append(name)

    context.sni_callback = sni  # type: ignore[assignment]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_tls_names_the_hostname_while_the_connection_goes_to_its_vetted_address(
    tmp_path: Path,
) -> None:
    ca, cert, key = certificates(tmp_path)
    heard: list[str | None] = []
    async with https_server(cert, key, heard) as port:
        trust = ssl.create_default_context(cafile=str(ca))
        async with delivery_client(allow_private=True, verify=trust) as http:
            response = await http.get(f"https://localhost:{port}/hook")
            assert (response.status_code, response.text) == (200, "ok")
            # The same address without the name: the certificate names no address, refused.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(f"https://127.0.0.1:{port}/hook")
    assert heard[0] == "localhost"


async def test_the_client_refuses_a_private_name_when_private_targets_are_not_allowed() -> None:
    async with delivery_client(allow_private=False) as http:
        with pytest.raises(WebhookTargetRefused):
            await http.get("http://localhost:9/hook")
