"""One way to connect to Temporal, and the search attributes ops filter on (SPEC §4).

The connection follows Temporal's standard environment configuration (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`, the profile file), as every Temporal
tool does; a `REFUNDS_TEMPORAL_*` setting overrides the matching part of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS, ClientConnectConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from refunds.runtime.payload_codec import EncryptionCodec
from refunds.runtime.payload_converter import encrypted
from refunds.settings import Settings

log = logging.getLogger("refunds.temporal")

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"

SEARCH_ATTRIBUTE_TYPES = {
    "RefundNo": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "OrderNo": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "RefundStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "PaymentChannel": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "RefundAmount": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}
_TYPE_NAMES = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
}


def data_converter(settings: Settings) -> DataConverter:
    """What every client and worker converts with: payloads encrypted with the settings' keys
    (they must all agree, or a worker cannot read what the API started)."""
    return encrypted(EncryptionCodec(settings.payload_key_set()))


def connect_config(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> ClientConnectConfig:
    """`Client.connect` arguments: Temporal's environment configuration (from `environ`, the
    process environment by default), then the `REFUNDS_TEMPORAL_*` settings on top."""
    profile = ClientConfigProfile.load(override_env_vars=environ)
    profile = replace(
        profile,
        address=settings.temporal_address or profile.address or DEFAULT_ADDRESS,
        namespace=settings.temporal_namespace or profile.namespace or DEFAULT_NAMESPACE,
        api_key=settings.temporal_api_key or profile.api_key,
        tls=_tls(settings, profile.tls),
    )
    return profile.to_client_connect_config()


def _tls(settings: Settings, tls: ClientConfigTLS | None) -> ClientConfigTLS | None:
    """The profile's TLS with each `REFUNDS_TEMPORAL_TLS*` setting that is set replacing its
    part (an API key alone turns TLS on with the system roots, as the SDK does)."""
    cert, key, ca = (
        settings.temporal_tls_cert_path,
        settings.temporal_tls_key_path,
        settings.temporal_tls_server_ca_path,
    )
    name, enabled = settings.temporal_tls_server_name, settings.temporal_tls
    if (cert, key, ca, name, enabled) == (None, None, None, None, None):
        return tls
    base = tls or ClientConfigTLS()
    return ClientConfigTLS(
        disabled=base.disabled if enabled is None else not enabled,
        server_name=name or base.server_name,
        server_root_ca_cert=Path(ca) if ca else base.server_root_ca_cert,
        client_cert=Path(cert) if cert else base.client_cert,
        client_private_key=Path(key) if key else base.client_private_key,
    )


async def connect(
    settings: Settings, attempts: int = 30, metrics_port: int | None = None
) -> Client:
    """Connect, waiting for a server that is still starting (compose starts everything at once).
    With `metrics_port`, the SDK serves its Prometheus metrics there (one runtime per process)."""
    config = connect_config(settings)
    converter = data_converter(settings)
    runtime = _runtime_with_metrics(metrics_port) if metrics_port else None
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(**config, runtime=runtime, data_converter=converter)
        except RuntimeError:
            if attempt == attempts:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


def _runtime_with_metrics(port: int) -> Runtime:
    metrics = PrometheusConfig(bind_address=f"0.0.0.0:{port}")
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))


def register_commands(namespace: str) -> tuple[str, str]:
    """The commands ops run once where the worker may not register the search attributes:
    Temporal Cloud (`tcld`) and a self-hosted cluster (`temporal`, one call per type)."""
    cloud = f"tcld namespace search-attributes add --namespace {namespace}" + "".join(
        f" --search-attribute {name}={_TYPE_NAMES[kind]}"
        for name, kind in SEARCH_ATTRIBUTE_TYPES.items()
    )
    by_type: dict[str, list[str]] = {}
    for name, kind in SEARCH_ATTRIBUTE_TYPES.items():
        by_type.setdefault(_TYPE_NAMES[kind], []).append(name)
    self_hosted = " && ".join(
        f"temporal operator search-attribute create --namespace {namespace}"
        + "".join(f" --name {name}" for name in names)
        + f" --type {kind}"
        for kind, names in by_type.items()
    )
    return cloud, self_hosted


async def ensure_search_attributes(client: Client, namespace: str) -> bool:
    """Register the refund search attributes; already registered is fine. Where the operator
    service refuses (Temporal Cloud: PERMISSION_DENIED or UNIMPLEMENTED), log one line with the
    command that registers them and go on: the worker's refunds don't depend on it, ops' filters
    do. Returns whether they are registered."""
    request = AddSearchAttributesRequest(
        search_attributes=dict(SEARCH_ATTRIBUTE_TYPES), namespace=namespace
    )
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as err:
        if err.status == RPCStatusCode.ALREADY_EXISTS:
            return True
        cloud, self_hosted = register_commands(namespace)
        log.warning(
            f"search attributes not registered ({err.status.name}: {err.message}); "
            f"register them once with: {cloud}  (self-hosted: {self_hosted})",
            extra={"event": "search_attributes_not_registered", "namespace": namespace},
        )
        return False
    return True
