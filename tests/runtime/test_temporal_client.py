"""One connect function for API, worker and CLI: Temporal's environment configuration, the
`REFUNDS_TEMPORAL_*` settings on top, TLS and API keys; and search attributes the server refuses
to register are logged with the command that registers them, not fatal."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import TLSConfig

from refunds.embedded.ports import free_port
from refunds.runtime.temporal_client import (
    connect,
    connect_config,
    ensure_search_attributes,
    register_commands,
)
from refunds.settings import Settings
from tests.runtime.tls_proxy import make_certificates, tls_proxy

ATTRIBUTES = ["RefundNo", "OrderNo", "RefundStatus", "PaymentChannel", "RefundAmount"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No TEMPORAL_* or REFUNDS_TEMPORAL_* from the machine running the tests."""
    for key in list(os.environ):
        if key.startswith(("TEMPORAL_", "REFUNDS_TEMPORAL_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", "/nonexistent/temporal.toml")
    yield monkeypatch


async def register_namespace(address: str) -> str:
    client = await Client.connect(address)
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    return namespace


async def assert_serves(client: Client, namespace: str) -> None:
    assert client.namespace == namespace
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    assert described.namespace_info.name == namespace


async def test_temporal_environment_configuration_is_used(
    clean_env: pytest.MonkeyPatch, temporal_address: str
) -> None:
    namespace = await register_namespace(temporal_address)
    clean_env.setenv("TEMPORAL_ADDRESS", temporal_address)
    clean_env.setenv("TEMPORAL_NAMESPACE", namespace)
    await assert_serves(await connect(Settings(), attempts=1), namespace)


async def test_refunds_settings_override_the_temporal_environment(
    clean_env: pytest.MonkeyPatch, temporal_address: str
) -> None:
    namespace = await register_namespace(temporal_address)
    clean_env.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")  # nothing listens there
    clean_env.setenv("TEMPORAL_NAMESPACE", "not-this-one")
    clean_env.setenv("REFUNDS_TEMPORAL_ADDRESS", temporal_address)
    clean_env.setenv("REFUNDS_TEMPORAL_NAMESPACE", namespace)
    await assert_serves(await connect(Settings(), attempts=1), namespace)


def test_nothing_configured_is_the_local_default(clean_env: pytest.MonkeyPatch) -> None:
    assert connect_config(Settings()) == {"target_host": "localhost:7233", "namespace": "default"}


def test_an_api_key_turns_tls_on(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TEMPORAL_API_KEY", "from-env")
    assert connect_config(Settings())["api_key"] == "from-env"
    config = connect_config(Settings(temporal_api_key="ours"))
    assert (config["api_key"], config["tls"]) == ("ours", True)  # TLS with the system roots


def test_tls_settings_become_the_sdk_tls_config(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("cert", "key", "ca", "env-cert"):
        (tmp_path / name).write_bytes(f"<{name}>".encode())
    clean_env.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(tmp_path / "env-cert"))
    clean_env.setenv("TEMPORAL_TLS_SERVER_NAME", "env.example")
    from_env = connect_config(Settings())["tls"]
    assert isinstance(from_env, TLSConfig)
    assert (from_env.client_cert, from_env.domain) == (b"<env-cert>", "env.example")

    clean_env.setenv("REFUNDS_TEMPORAL_TLS_CERT_PATH", str(tmp_path / "cert"))
    clean_env.setenv("REFUNDS_TEMPORAL_TLS_KEY_PATH", str(tmp_path / "key"))
    clean_env.setenv("REFUNDS_TEMPORAL_TLS_SERVER_CA_PATH", str(tmp_path / "ca"))
    assert connect_config(Settings())["tls"] == TLSConfig(
        domain="env.example",  # not overridden: kept from TEMPORAL_TLS_SERVER_NAME
        server_root_ca_cert=b"<ca>",
        client_cert=b"<cert>",
        client_private_key=b"<key>",
    )
    clean_env.setenv("REFUNDS_TEMPORAL_TLS", "false")
    assert connect_config(Settings())["tls"] is False


async def test_connects_over_mutual_tls(
    clean_env: pytest.MonkeyPatch, temporal_address: str, tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path)
    async with tls_proxy(certs, temporal_address) as address:
        clean_env.setenv("TEMPORAL_ADDRESS", address)
        clean_env.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(certs.ca))
        clean_env.setenv("TEMPORAL_TLS_SERVER_NAME", "localhost")
        with pytest.raises(RuntimeError):  # the proxy requires a client certificate
            await connect(Settings(), attempts=1)
        settings = Settings(
            temporal_tls_cert_path=certs.client_cert, temporal_tls_key_path=certs.client_key
        )
        await assert_serves(await connect(settings, attempts=1), "default")


def test_register_commands_name_all_five_attributes() -> None:
    cloud, self_hosted = register_commands("refunds.a1b2c")
    assert cloud == (
        "tcld namespace search-attributes add --namespace refunds.a1b2c"
        " --search-attribute RefundNo=Keyword --search-attribute OrderNo=Keyword"
        " --search-attribute RefundStatus=Keyword --search-attribute PaymentChannel=Keyword"
        " --search-attribute RefundAmount=Int"
    )
    assert self_hosted == (
        "temporal operator search-attribute create --namespace refunds.a1b2c"
        " --name RefundNo --name OrderNo --name RefundStatus --name PaymentChannel"
        " --type Keyword && temporal operator search-attribute create"
        " --namespace refunds.a1b2c --name RefundAmount --type Int"
    )


async def test_registered_attributes_are_fine(temporal_address: str) -> None:
    client = await Client.connect(temporal_address)
    assert await ensure_search_attributes(client, "default") is True
    assert await ensure_search_attributes(client, "default") is True


async def test_a_refused_registration_is_one_warning_with_the_commands(
    temporal_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The dev server refuses for a namespace it does not know (NOT_FOUND), as Temporal Cloud
    refuses the operator service (PERMISSION_DENIED / UNIMPLEMENTED): same path, no raise."""
    namespace = f"unknown-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(temporal_address, namespace=namespace)
    with caplog.at_level(logging.WARNING, logger="refunds.temporal"):
        assert await ensure_search_attributes(client, namespace) is False
    [record] = caplog.records
    cloud, self_hosted = register_commands(namespace)
    assert "NOT_FOUND" in record.getMessage()
    assert cloud in record.getMessage() and self_hosted in record.getMessage()
    assert all(name in record.getMessage() for name in ATTRIBUTES)
    assert "\n" not in record.getMessage()
