"""One way to connect to Temporal, and the search attributes ops filter on (SPEC §4)."""

from __future__ import annotations

import asyncio
import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from refunds.settings import Settings

log = logging.getLogger("refunds.temporal")

SEARCH_ATTRIBUTE_TYPES = {
    "RefundNo": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "OrderNo": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "RefundStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "PaymentChannel": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "RefundAmount": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


async def connect(
    settings: Settings, attempts: int = 30, metrics_port: int | None = None
) -> Client:
    """Connect, waiting for a server that is still starting (compose starts everything at once).
    With `metrics_port`, the SDK serves its Prometheus metrics there (one runtime per process)."""
    runtime = _runtime_with_metrics(metrics_port) if metrics_port else None
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                runtime=runtime,
            )
        except RuntimeError:
            if attempt == attempts:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


def _runtime_with_metrics(port: int) -> Runtime:
    metrics = PrometheusConfig(bind_address=f"0.0.0.0:{port}")
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register the refund search attributes; already registered is fine."""
    request = AddSearchAttributesRequest(
        search_attributes=dict(SEARCH_ATTRIBUTE_TYPES), namespace=namespace
    )
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
