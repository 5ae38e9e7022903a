"""Request and response models. Amounts are strict integers in minor units: 10.5 or "10" is 422."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from refunds.domain.messages import Channel, FindingKind

Amount = Annotated[StrictInt, Field(gt=0, le=10**15)]
NonNegative = Annotated[StrictInt, Field(ge=0, le=10**15)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderItemIn(Strict):
    sku: Identifier
    quantity: Annotated[StrictInt, Field(gt=0, le=10**6)]
    unit_amount: NonNegative


class OrderIn(Strict):
    order_no: Identifier
    user_id: Annotated[str, Field(min_length=1, max_length=128)]
    channel: Literal["stripe", "wechatpay"]
    currency: Currency
    total_amount: Amount
    paid_amount: NonNegative
    payment_ref: Annotated[str | None, Field(max_length=128)] = None
    items: list[OrderItemIn] = Field(default_factory=list, max_length=500)
    points_used: NonNegative = 0
    coupon_code: Identifier | None = None
    fulfillment: Literal["unfulfilled", "shipped", "delivered", "consumed"] = "unfulfilled"
    status: Literal["pending", "paid"] = "paid"

    @field_validator("items")
    @classmethod
    def _unique_skus(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        if len({i.sku for i in items}) != len(items):
            raise ValueError("each sku may appear once")
        return items


class RefundItemIn(Strict):
    sku: Identifier
    quantity: Annotated[StrictInt, Field(gt=0, le=10**6)]


class RefundIn(Strict):
    order_no: Identifier
    amount: Amount
    reason: Annotated[str, Field(max_length=500)] = ""
    # Checked by domain.matching.check_refund_no: a stable `invalid_refund_no` code, not a
    # generic validation error, since every gateway's own limit is behind it.
    refund_no: Annotated[str, Field(max_length=255)] | None = None
    currency: Currency | None = None
    items: list[RefundItemIn] = Field(default_factory=list, max_length=500)

    @field_validator("items")
    @classmethod
    def _unique_skus(cls, items: list[RefundItemIn]) -> list[RefundItemIn]:
        if len({i.sku for i in items}) != len(items):
            raise ValueError("each sku may appear once")
        return items


class ApproveIn(Strict):
    note: Annotated[str, Field(max_length=500)] = ""


class RejectIn(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ResolveIn(Strict):
    outcome: Literal["succeeded", "failed"]
    note: Annotated[str, Field(max_length=500)] = ""


class TimelineEventOut(BaseModel):
    at: datetime
    actor: str
    event: str
    detail: dict[str, Any]


class RefundOut(BaseModel):
    refund_no: str
    order_no: str
    amount: int
    currency: str
    channel: str
    reason: str
    items: list[dict[str, Any]]
    source: str
    requested_by: str
    approved_by: str | None
    gateway_refund_id: str | None
    status: str
    needs_manual_return: bool
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    timeline: list[TimelineEventOut] | None = None


class RefundPage(BaseModel):
    items: list[RefundOut]
    next_cursor: str | None


class OrderItemOut(BaseModel):
    sku: str
    quantity: int
    unit_amount: int


class CouponOut(BaseModel):
    code: str
    status: str
    released_by_refund_no: str | None


class OrderOut(BaseModel):
    order_no: str
    user_id: str
    channel: str
    currency: str
    total_amount: int
    paid_amount: int
    payment_ref: str | None
    items: list[OrderItemOut]
    points_used: int
    coupon_code: str | None
    fulfillment: str
    status: str
    refunded_amount: int
    reserved_amount: int
    refundable_amount: int
    restored_points: int = 0
    restocked_items: dict[str, int] = Field(default_factory=dict)
    coupon: CouponOut | None = None
    refunds: list[RefundOut] = Field(default_factory=list)
    created_at: datetime


class FindingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: FindingKind
    subject: str
    refund_no: str | None
    channel: Channel | None
    detail: dict[str, Any]
    created_at: datetime


class ReconciliationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    workflow_id: str
    run_key: str
    window_start: datetime
    window_end: datetime
    started_at: datetime
    finished_at: datetime | None
    # Per finding kind; empty until the run finishes.
    counts: dict[FindingKind, int]
    summary: str | None


class ReconciliationDetailOut(ReconciliationOut):
    findings: list[FindingOut]


class ReconciliationPage(BaseModel):
    items: list[ReconciliationOut]
    next_cursor: str | None
