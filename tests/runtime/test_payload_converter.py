"""The clients' data converter (refunds/runtime/payload_converter.py): Temporal's own JSON, whose
dataclass decoding only caches the field types. Every message the workflows and activities
exchange must decode the same as with the SDK's default converter, in both directions, and
the converter must stay context-free (the workers' sandbox runner depends on it)."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.converter import DataConverter

from refunds.domain.messages import (
    Applied,
    Channel,
    GatewayNotification,
    RefundFacts,
    RefundItem,
    RefundRequest,
    RefundRow,
    RefundSource,
    RefundStatus,
    RefundView,
    Step,
)
from refunds.runtime.payload_converter import DATA_CONVERTER, DataclassFromJSON
from refunds.runtime.workflow_runner import ignores_context

FACTS = RefundFacts(
    refund_no="RF1",
    order_no="ORD1",
    amount=1250,
    currency="USD",
    channel=Channel.STRIPE,
    payment_ref="pi_1",
    total_amount=5000,
    reason="damaged",
    requested_by="cust_1",
    source=RefundSource.CUSTOMER,
    items=[RefundItem(sku="SKU-1", quantity=2)],
    created_at="2026-11-23T10:00:00+00:00",
)
ROW = RefundRow(status=RefundStatus.PROCESSING, approved_by="approver_1", updated_at="t")
SAMPLES: list[Any] = [
    FACTS,
    ROW,
    Applied(facts=FACTS, row=ROW, auto_approved=True),
    Step(facts=FACTS, actor="system", event="gateway_submitted", detail={"amount": 1250}),
    RefundView(refund_no="RF1", status=RefundStatus.SUCCEEDED, facts=FACTS, row=ROW),
    RefundView(refund_no="RF1", status=None),  # a first-type run's answer: no facts, no row
    RefundRequest(
        refund_no="RF1",
        order_no="ORD1",
        amount=1250,
        reason="damaged",
        requested_by="cust_1",
        source=RefundSource.CUSTOMER,
        items=[RefundItem(sku="SKU-1", quantity=2)],
        reopened_by=None,
    ),
]


async def _round_trip(encode: DataConverter, decode: DataConverter, value: Any) -> Any:
    payloads = await encode.encode([value])
    [decoded] = await decode.decode(payloads, [type(value)])
    return decoded


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
async def test_messages_decode_as_with_the_sdks_default_converter(value: Any) -> None:
    default = DataConverter.default
    ours = await _round_trip(DATA_CONVERTER, DATA_CONVERTER, value)
    assert ours == value
    assert type(ours.status if isinstance(ours, RefundView) else ours) is type(
        value.status if isinstance(value, RefundView) else value
    )
    # Written by one, read by the other: histories written before this converter replay.
    assert await _round_trip(default, DATA_CONVERTER, value) == value
    assert await _round_trip(DATA_CONVERTER, default, value) == value
    assert await DATA_CONVERTER.encode([value]) == await default.encode([value])


async def test_nested_dataclasses_and_enums_come_back_typed() -> None:
    applied = await _round_trip(DATA_CONVERTER, DATA_CONVERTER, SAMPLES[2])
    assert isinstance(applied.facts, RefundFacts)
    assert isinstance(applied.facts.items[0], RefundItem)
    assert applied.facts.channel is Channel.STRIPE
    assert applied.row.status is RefundStatus.PROCESSING


async def test_unknown_keys_are_ignored_and_a_missing_field_fails() -> None:
    converter = DataclassFromJSON()
    row = converter.to_typed_value(RefundRow, {"status": "processing", "added_later": 1})
    assert row == RefundRow(status=RefundStatus.PROCESSING)
    with pytest.raises(TypeError):
        converter.to_typed_value(RefundRow, {"approved_by": "a"})  # no status
    with pytest.raises(TypeError, match="not dict"):
        converter.to_typed_value(GatewayNotification, ["not", "a", "dict"])
    with pytest.raises(TypeError, match="field status"):
        converter.to_typed_value(RefundRow, {"status": "no_such_status"})
    with pytest.raises(TypeError, match="field quantity"):
        converter.to_typed_value(RefundItem, {"sku": "S", "quantity": "two"})
    assert converter.to_typed_value(int, 3) is DataclassFromJSON.Unhandled


def test_the_converter_is_context_free_so_workers_keep_the_fast_runner() -> None:
    assert ignores_context(DATA_CONVERTER)
