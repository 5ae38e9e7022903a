"""Request and response models. Amounts are strict integers in minor units: 10.5 or "10" is 422."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, field_validator

from refunds.domain.customer_view import CustomerActor, CustomerStatus
from refunds.domain.messages import (
    Channel,
    FindingKind,
    OrderStatus,
    RefundSource,
    RefundStatus,
    ResolveOutcome,
)
from refunds.domain.outgoing import DeliveryState, EventType

Amount = Annotated[StrictInt, Field(gt=0, le=10**15)]
NonNegative = Annotated[StrictInt, Field(ge=0, le=10**15)]
IDENTIFIER = r"^[A-Za-z0-9_.:-]+$"
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENTIFIER)]
# ISO 4217, accepted in either case (Stripe writes `usd`) and stored upper case, so one order's
# currency compares equal however each caller spelled it.
Currency = Annotated[
    str,
    Field(pattern=r"^[A-Za-z]{3}$", examples=["USD", "cny"]),
    AfterValidator(str.upper),
]
# Free text goes to PostgreSQL, whose text type cannot hold NUL.
NO_NUL = r"^[^\x00]*$"
Note = Annotated[str, Field(max_length=500, pattern=NO_NUL)]
# A key in a URL path: printable ASCII, so anything a client registered is reachable and nothing
# PostgreSQL refuses (NUL) gets to a query.
PathKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[!-~]+$")]
# PostgreSQL's bigint.
PathId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderItemIn(Strict):
    sku: Identifier
    quantity: Annotated[StrictInt, Field(gt=0, le=10**6)]
    unit_amount: NonNegative


class OrderIn(Strict):
    order_no: Identifier
    user_id: Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]
    channel: Channel
    currency: Currency
    total_amount: Amount
    paid_amount: NonNegative
    # Required for a paid order, one order's per channel (409 payment_ref_in_use).
    payment_ref: Annotated[str | None, Field(min_length=1, max_length=128, pattern=NO_NUL)] = None
    items: list[OrderItemIn] = Field(default_factory=list, max_length=500)
    points_used: NonNegative = 0
    coupon_code: Identifier | None = None
    fulfillment: Literal["unfulfilled", "shipped", "delivered", "consumed"] = "unfulfilled"
    status: Literal[OrderStatus.PENDING, OrderStatus.PAID] = OrderStatus.PAID

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
    reason: Note = ""
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


# A decision's `note` is the shop's own; only `customer_message` (and a rejection's `reason`)
# is shown to the refund's customer.
CustomerMessage = Annotated[
    Note, Field(description="Shown to the refund's customer; the note never is.")
]


class ApproveIn(Strict):
    note: Note = ""
    customer_message: CustomerMessage = ""


class RejectIn(Strict):
    reason: Annotated[
        Note, Field(min_length=1, description="Shown to the refund's customer as the answer.")
    ]


class ResolveIn(Strict):
    outcome: ResolveOutcome
    note: Note = ""
    customer_message: CustomerMessage = ""


class TimelineEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    event: str
    detail: dict[str, Any]


class RefundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    refund_no: str
    order_no: str
    amount: int
    currency: str
    channel: Channel
    reason: str
    items: list[dict[str, Any]]
    source: RefundSource
    requested_by: str
    approved_by: str | None
    gateway_refund_id: str | None
    status: RefundStatus
    needs_manual_return: bool
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    timeline: list[TimelineEventOut] | None = None


class CustomerTimelineEntryOut(BaseModel):
    """A move of the refund as its customer reads it: no staff, no gateway, no notes."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    by: CustomerActor
    status: RefundStatus
    customer_status: CustomerStatus
    message: str | None


class CustomerRefundOut(BaseModel):
    """A refund as its customer reads it: what they asked, where it stands, the shop's messages
    to them. `reason` is null when the shop asked for them (its reason is the shop's note)."""

    refund_no: str
    order_no: str
    amount: int
    currency: str
    status: RefundStatus
    customer_status: CustomerStatus
    reason: str | None
    items: list[dict[str, Any]]
    requested_by: CustomerActor
    message: str | None = Field(
        default=None, description="The shop's latest message to the customer (with a timeline)."
    )
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    timeline: list[CustomerTimelineEntryOut] | None = None


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
    channel: Channel
    currency: str
    total_amount: int
    paid_amount: int
    payment_ref: str | None
    items: list[OrderItemOut]
    points_used: int
    coupon_code: str | None
    fulfillment: str
    status: OrderStatus
    refunded_amount: int
    reserved_amount: int
    refundable_amount: int
    restored_points: int = 0
    restocked_items: dict[str, int] = Field(default_factory=dict)
    coupon: CouponOut | None = None
    refunds: list[RefundOut] = Field(default_factory=list)
    created_at: datetime


class CustomerCouponOut(BaseModel):
    code: str
    status: str


class CustomerOrderOut(BaseModel):
    """An order as its customer reads it: its money, lines and their refunds, nothing of the
    gateway's or the shop's books (payment ids, reservations, restocking)."""

    order_no: str
    channel: Channel
    currency: str
    total_amount: int
    paid_amount: int
    items: list[OrderItemOut]
    points_used: int
    status: OrderStatus
    refunded_amount: int
    refundable_amount: int
    restored_points: int = 0
    coupon: CustomerCouponOut | None = None
    refunds: list[CustomerRefundOut] = Field(default_factory=list)
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


class WebhookAck(BaseModel):
    received: bool
    duplicate: bool = Field(description="The same event was accepted before: nothing changed.")


class WeChatAnswer(BaseModel):
    """The answer WeChat Pay v3 expects from a notify URL that refuses a notification."""

    code: Literal["FAIL"]
    message: str


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadinessOut(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(examples=[{"database": "ok", "temporal": "ok"}])


# ---- the shops' webhooks (issue 13) ----------------------------------------------------------

# Printable ASCII (an international host name goes as punycode): nothing PostgreSQL refuses.
WebhookUrl = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^https?://[!-~]+$")]
Subscription = Annotated[
    list[EventType | Literal["*"]], Field(min_length=1, max_length=len(EventType) + 1)
]


class WebhookEndpointIn(Strict):
    url: WebhookUrl
    event_types: Subscription = Field(description='The types it hears, or `["*"]` for all.')
    enabled: bool = True


class WebhookEndpointPatch(Strict):
    url: WebhookUrl | None = None
    event_types: Subscription | None = None
    enabled: bool | None = None


class RotateSecretIn(Strict):
    overlap_seconds: Annotated[int, Field(ge=0, le=30 * 86400)] | None = Field(
        default=None,
        description="How long the old secret still signs (default REFUNDS_WEBHOOK_SECRET_OVERLAP)",
    )


class WebhookEndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    event_types: list[str]
    enabled: bool
    # Set when a delivery ran out of tries; cleared by the next delivery that succeeds.
    failing: bool
    failing_since: datetime | None
    previous_secret_valid_until: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpointOut):
    secret: str = Field(description="Shown once: at creation and at each rotation.")


class WebhookEndpointList(BaseModel):
    items: list[WebhookEndpointOut]


class DeliveryAttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status_code: int | None
    latency_ms: int
    error: str | None
    at: datetime


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    endpoint_id: int
    state: DeliveryState
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    tries: list[DeliveryAttemptOut] | None = None


class EventOut(BaseModel):
    id: str
    type: EventType
    refund_no: str | None
    sequence: int | None
    created_at: datetime
    data: dict[str, Any]
    deliveries: list[DeliveryOut]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class RedeliverOut(BaseModel):
    queued: int = Field(description="Deliveries queued again")
