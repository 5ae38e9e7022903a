"""Typed ORM models of SPEC §3. Money is BIGINT minor units; the money rules live in CHECKs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from refunds.db.sealing import SealedString
from refunds.domain.messages import Channel, FindingKind, GatewayStatus, RefundItem
from refunds.domain.notifications import NotificationOutcome
from refunds.domain.outgoing import DeliveryState

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _one_of(column: str, values: type[StrEnum]) -> str:
    """A CHECK body from the domain's enum, so the database and the code share one list."""
    return f"{column} IN ({','.join(repr(v.value) for v in values)})"


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("total_amount > 0", name="total_positive"),
        CheckConstraint("paid_amount >= 0 AND paid_amount <= total_amount", name="paid_le_total"),
        CheckConstraint("points_used >= 0", name="points_nonneg"),
        # reserved = every refund not rejected/expired/failed; the database refuses over-refunds.
        CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= reserved_amount "
            "AND reserved_amount <= paid_amount",
            name="refunds_within_paid",
        ),
        CheckConstraint("status IN ('pending','paid','refunded','cancelled')", name="status"),
        CheckConstraint("channel IN ('stripe','wechatpay')", name="channel"),
        CheckConstraint(
            "fulfillment IN ('unfulfilled','shipped','delivered','consumed')", name="fulfillment"
        ),
        # One order per payment: two would each refund it. NULLs (pending orders) are distinct.
        UniqueConstraint("channel", "payment_ref", name="uq_orders_channel_payment_ref"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_no: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[int] = mapped_column(BigInteger)
    paid_amount: Mapped[int] = mapped_column(BigInteger)
    payment_ref: Mapped[str | None] = mapped_column(String(128))
    points_used: Mapped[int] = mapped_column(Integer, default=0)
    coupon_code: Mapped[str | None] = mapped_column(String(64))
    fulfillment: Mapped[str] = mapped_column(String(16), default="unfulfilled")
    status: Mapped[str] = mapped_column(String(16))
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", lazy="raise", order_by="OrderItem.id"
    )


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        UniqueConstraint("order_id", "sku"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_amount >= 0", name="unit_amount_nonneg"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount: Mapped[int] = mapped_column(BigInteger)

    order: Mapped[Order] = relationship(back_populates="items", lazy="raise")


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "status IN ('pending_approval','processing','succeeded','failed','abnormal',"
            "'rejected','expired')",
            name="status",
        ),
        CheckConstraint("source IN ('customer','admin')", name="source"),
        CheckConstraint(_one_of("gateway_status", GatewayStatus), name="gateway_status"),
        Index("ix_refunds_status_id", "status", "id"),
        Index("ix_refunds_order_no_id", "order_no", "id"),
        # The auto-approval policy's per requester per day sum reads only these rows.
        Index(
            "ix_refunds_auto_approved_requester",
            "requested_by",
            "currency",
            "created_at",
            postgresql_where=text("auto_approved"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    refund_no: Mapped[str] = mapped_column(String(64), unique=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("orders.order_no"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    source: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(128))
    approved_by: Mapped[str | None] = mapped_column(String(128))
    gateway_refund_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(24))
    needs_manual_return: Mapped[bool] = mapped_column(Boolean, default=False)
    # Hash of the request body: the same refund_no with another body is a 409, not a replay.
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    # The workflow run that owns this refund: a second run for the same refund_no stands down.
    workflow_run_id: Mapped[str | None] = mapped_column(String(64))
    # The last gateway status that was news for this refund (webhooks, create and poll answers),
    # None before the gateway said anything: a notification that is not news is not signalled.
    gateway_status: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The sequence of the refund's last outgoing event (issue 13), bumped under the row lock the
    # status move holds: receivers order a refund's events by it.
    event_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Approved by REFUNDS_AUTO_APPROVE_LIMIT, decided in the apply transaction: the policy's sums
    # count these rows, and a retried apply answers the decision taken the first time.
    auto_approved: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )

    events: Mapped[list[RefundEvent]] = relationship(lazy="raise", order_by="RefundEvent.id")

    def item_list(self) -> list[RefundItem]:
        """The returned items as the workflow's messages carry them."""
        return [RefundItem(i["sku"], int(i["quantity"])) for i in self.items]


class RefundEvent(Base):
    """The append-only audit trail of a refund."""

    __tablename__ = "refund_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    refund_no: Mapped[str] = mapped_column(ForeignKey("refunds.refund_no"), index=True)
    at: Mapped[datetime] = _now()
    actor: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # Derived from workflow history, so a retried activity appends nothing twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class Restoration(Base):
    """One row per (refund_no, kind): the guard that makes every restore happen once."""

    __tablename__ = "restorations"

    refund_no: Mapped[str] = mapped_column(ForeignKey("refunds.refund_no"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = _now()


class PointsLedger(Base):
    __tablename__ = "points_ledger"
    __table_args__ = (UniqueConstraint("refund_no", "kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("orders.order_no"), index=True)
    refund_no: Mapped[str] = mapped_column(ForeignKey("refunds.refund_no"))
    kind: Mapped[str] = mapped_column(String(32))
    points: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()


class InventoryStock(Base):
    __tablename__ = "inventory"
    __table_args__ = (CheckConstraint("on_hand >= 0", name="on_hand_nonneg"),)

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = _now()


class InventoryMovement(Base):
    __tablename__ = "inventory_movements"
    __table_args__ = (
        UniqueConstraint("refund_no", "kind", "sku"),
        CheckConstraint("quantity <> 0", name="quantity_nonzero"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sku: Mapped[str] = mapped_column(ForeignKey("inventory.sku"), index=True)
    order_no: Mapped[str] = mapped_column(ForeignKey("orders.order_no"), index=True)
    refund_no: Mapped[str] = mapped_column(ForeignKey("refunds.refund_no"))
    kind: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (CheckConstraint("status IN ('available','used')", name="status"),)

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), default="available")
    order_no: Mapped[str | None] = mapped_column(String(64))
    released_by_refund_no: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = _now()


class GatewayNotificationRow(Base):
    """Every verified webhook, unique by the gateway's own event id: the dedupe key."""

    __tablename__ = "gateway_notifications"
    __table_args__ = (
        UniqueConstraint("gateway", "notification_id"),
        CheckConstraint(_one_of("outcome", NotificationOutcome), name="outcome"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gateway: Mapped[str] = mapped_column(String(16))
    notification_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(64))
    refund_no: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str | None] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    received_at: Mapped[datetime] = _now()
    # What was done with it (issue 11). The default is what every notification about a refund
    # of ours got before then (migration 0003).
    outcome: Mapped[str] = mapped_column(String(16), server_default=text("'signalled'"))


class Reconciliation(Base):
    """One reconciliation run of the ledger against the gateways (issue 9)."""

    __tablename__ = "reconciliations"
    __table_args__ = (CheckConstraint("window_start <= window_end", name="window_ordered"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The Temporal run id: an activity retried after a crash opens the same row, not a second one.
    run_key: Mapped[str] = mapped_column(Text, unique=True)
    workflow_id: Mapped[str] = mapped_column(Text)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Finding kind -> number, written once at finish; {} while the run is going.
    counts: Mapped[dict[str, int]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    summary: Mapped[str | None] = mapped_column(Text)

    findings: Mapped[list[ReconciliationFinding]] = relationship(
        back_populates="reconciliation", lazy="raise", order_by="ReconciliationFinding.id"
    )


class ReconciliationFinding(Base):
    __tablename__ = "reconciliation_findings"
    __table_args__ = (
        # A resumed run reports each finding once.
        UniqueConstraint("reconciliation_id", "kind", "subject"),
        CheckConstraint(_one_of("kind", FindingKind), name="kind"),
        CheckConstraint(_one_of("channel", Channel), name="channel"),
        Index("ix_reconciliation_findings_reconciliation_id_id", "reconciliation_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reconciliation_id: Mapped[int] = mapped_column(
        ForeignKey("reconciliations.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(32))
    # No foreign key: a gateway refund under our refund_no may have no row of ours at all.
    refund_no: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))
    # What the finding is about (a refund_no, a gateway refund id): its identity within a run.
    subject: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = _now()

    reconciliation: Mapped[Reconciliation] = relationship(back_populates="findings", lazy="raise")


class ConsoleSession(Base):
    """A signed-in person of the console (issue 12). The cookie holds a random id; only its
    SHA-256 is stored, so a read of this table signs nobody in."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The principal id (`refunds.domain.principals`), as `requested_by` and `approved_by` hold it.
    sub: Mapped[str] = mapped_column(String(128))
    roles: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # How the person signed in: `hs256`, `oidc` (a provider's token) or `demo` (`refunds dev`).
    via: Mapped[str] = mapped_column(String(16))
    # Sent back in every form: a POST without it is refused (SameSite is the second fence).
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # A form the person was filling when the previous session expired, refilled once.
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The outcome of the last action, shown once on the next page (post/redirect/get).
    flash: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class WebhookEndpoint(Base):
    """Where a shop hears about its refunds (issue 13). The secret signs every delivery; after a
    rotation the previous one signs too until `previous_secret_valid_until`."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # EventType values, or ["*"] for every type.
    event_types: Mapped[list[str]] = mapped_column(JSONB, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Sealed with the payload keys in the database (refunds/db/sealing.py), plain in Python.
    secret: Mapped[str] = mapped_column(SealedString("webhook_endpoints.secret"))
    previous_secret: Mapped[str | None] = mapped_column(SealedString("webhook_endpoints.secret"))
    previous_secret_valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when a delivery ran out of tries; cleared by the next delivery that succeeds.
    failing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class OutgoingEvent(Base):
    """The transactional outbox: written in the transaction of the change it reports."""

    __tablename__ = "outgoing_events"
    __table_args__ = (
        UniqueConstraint("refund_no", "sequence"),
        Index("ix_outgoing_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    # No foreign key: a reconciliation finding may name a refund we do not have.
    refund_no: Mapped[str | None] = mapped_column(String(64), index=True)
    # Per refund, from 1; None for an event that is not a move of a refund.
    sequence: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = _now()

    deliveries: Mapped[list[EventDelivery]] = relationship(
        lazy="raise", order_by="EventDelivery.endpoint_id"
    )


class EventDelivery(Base):
    """One event to one endpoint: what the endpoint's delivery workflow works through."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        CheckConstraint(_one_of("state", DeliveryState), name="state"),
        Index("ix_event_deliveries_endpoint_id_state", "endpoint_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outgoing_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    # Deliveries of one refund to one endpoint go out in sequence: this is their lane.
    lane: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class DeliveryAttempt(Base):
    """Every HTTP try of a delivery, as the receiver answered it."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("event_deliveries.id", ondelete="CASCADE"), index=True
    )
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = _now()
