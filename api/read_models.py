"""Read models served from PostgreSQL: orders with their money and restores, refunds with
their timeline. Staff read the shop's model, a customer the reduced one
(`refunds.domain.customer_view`); `sees_shop_view` is the one place that chooses, and
`refund_for` / `order_for` are what every route and console page a customer can reach call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Principal
from api.schemas import (
    CouponOut,
    CustomerCouponOut,
    CustomerOrderOut,
    CustomerRefundOut,
    CustomerTimelineEntryOut,
    OrderItemOut,
    OrderOut,
    RefundOut,
    TimelineEventOut,
)
from refunds.db.models import Order, Refund, RefundEvent
from refunds.db.repositories import OrderRepository, RefundRepository
from refunds.domain.customer_view import (
    CustomerActor,
    actor_for,
    customer_status,
    customer_timeline,
)
from refunds.domain.errors import OrderNotFound, RefundNotFound
from refunds.domain.messages import REFUNDABLE_ORDER_STATUSES, Channel, OrderStatus, RefundView


def can_see_order(principal: Principal, order: Order) -> bool:
    return principal.is_staff or order.user_id == principal.id


async def visible_order(
    session: AsyncSession, principal: Principal, order_no: str, *, items: bool = True
) -> Order:
    """The order, or 404 for one the caller may not see: no hint that it exists. `items=False`:
    without its lines, one query fewer."""
    order = await OrderRepository(session).find(order_no, items=items)
    if order is None or not can_see_order(principal, order):
        raise OrderNotFound(f"order {order_no} not found")
    return order


async def visible_refund(session: AsyncSession, principal: Principal, refund_no: str) -> Refund:
    refund = await RefundRepository(session).find(refund_no)
    if refund is None:
        raise RefundNotFound(f"refund {refund_no} not found")
    order = await OrderRepository(session).get(refund.order_no)
    if not can_see_order(principal, order):
        raise RefundNotFound(f"refund {refund_no} not found")
    return refund


def refund_out(refund: Refund, timeline: list[TimelineEventOut] | None = None) -> RefundOut:
    return RefundOut.model_validate(refund).model_copy(update={"timeline": timeline})


def refund_from_view(view: RefundView) -> RefundOut | None:
    """The refund as the workflow's step committed it; None from a first-type run, which
    answers without it (the caller reads the row)."""
    facts, row = view.facts, view.row
    if facts is None or row is None:
        return None
    return RefundOut(
        refund_no=facts.refund_no,
        order_no=facts.order_no,
        amount=facts.amount,
        currency=facts.currency,
        channel=facts.channel,
        reason=facts.reason,
        items=[{"sku": i.sku, "quantity": i.quantity} for i in facts.items],
        source=facts.source,
        requested_by=facts.requested_by,
        approved_by=row.approved_by,
        gateway_refund_id=row.gateway_refund_id,
        status=row.status,
        needs_manual_return=row.needs_manual_return,
        created_at=datetime.fromisoformat(facts.created_at),
        updated_at=datetime.fromisoformat(row.updated_at),
        completed_at=datetime.fromisoformat(row.completed_at) if row.completed_at else None,
    )


async def answered_refund(
    session: AsyncSession, principal: Principal, answer: Refund | RefundView
) -> RefundOut:
    """What a command returns: the workflow's answer as it is, else the ledger's row."""
    if isinstance(answer, Refund):
        return refund_out(answer)
    out = refund_from_view(answer)
    if out is not None:
        return out
    return refund_out(await visible_refund(session, principal, answer.refund_no))


def in_view(principal: Principal, out: RefundOut) -> RefundOut | CustomerRefundOut:
    """A command's answer (no timeline) in the caller's read model."""
    return out if sees_shop_view(principal) else customer_refund(out, principal.id)


def sees_shop_view(principal: Principal) -> bool:
    """Staff read the shop's model (who decided, notes, the gateway's answers); anyone else,
    the refund's customer, reads the customer's."""
    return principal.is_staff


async def refund_for(
    session: AsyncSession, principal: Principal, refund: Refund
) -> RefundOut | CustomerRefundOut:
    """The refund with its timeline, in the principal's read model."""
    events = await RefundRepository(session).events(refund.refund_no)
    if sees_shop_view(principal):
        return refund_out(refund, [TimelineEventOut.model_validate(e) for e in events])
    return customer_refund(refund_out(refund), principal.id, events)


async def order_for(
    session: AsyncSession, principal: Principal, order: Order
) -> OrderOut | CustomerOrderOut:
    out = await order_out(session, order)
    return out if sees_shop_view(principal) else customer_order(out, principal.id)


def customer_refund(
    out: RefundOut, customer_id: str, events: Sequence[RefundEvent] | None = None
) -> CustomerRefundOut:
    """The shop's model reduced to what the customer may read. Without `events`, no timeline
    and no message (as the shop's lists carry no timeline)."""
    timeline = None
    if events is not None:
        lines = customer_timeline(((e.at, e.actor, e.event, e.detail) for e in events), customer_id)
        timeline = [
            CustomerTimelineEntryOut(
                at=line.at,
                by=line.by,
                status=line.status,
                customer_status=customer_status(line.status),
                message=line.message,
            )
            for line in lines
        ]
    by = actor_for(out.requested_by, customer_id)
    return CustomerRefundOut(
        refund_no=out.refund_no,
        order_no=out.order_no,
        amount=out.amount,
        currency=out.currency,
        status=out.status,
        customer_status=customer_status(out.status),
        reason=out.reason if by == CustomerActor.YOU else None,
        items=[{"sku": i["sku"], "quantity": i["quantity"]} for i in out.items],
        requested_by=by,
        message=next((e.message for e in reversed(timeline or []) if e.message), None),
        created_at=out.created_at,
        updated_at=out.updated_at,
        completed_at=out.completed_at,
        timeline=timeline,
    )


def customer_order(out: OrderOut, customer_id: str) -> CustomerOrderOut:
    coupon = out.coupon
    return CustomerOrderOut(
        order_no=out.order_no,
        channel=out.channel,
        currency=out.currency,
        total_amount=out.total_amount,
        paid_amount=out.paid_amount,
        items=out.items,
        points_used=out.points_used,
        status=out.status,
        refunded_amount=out.refunded_amount,
        refundable_amount=out.refundable_amount,
        restored_points=out.restored_points,
        coupon=CustomerCouponOut(code=coupon.code, status=coupon.status) if coupon else None,
        refunds=[customer_refund(r, customer_id) for r in out.refunds],
        created_at=out.created_at,
    )


async def order_out(session: AsyncSession, order: Order) -> OrderOut:
    repo = OrderRepository(session)
    coupon = await repo.coupon(order.coupon_code)
    return OrderOut(
        order_no=order.order_no,
        user_id=order.user_id,
        channel=Channel(order.channel),
        currency=order.currency,
        total_amount=order.total_amount,
        paid_amount=order.paid_amount,
        payment_ref=order.payment_ref,
        items=[
            OrderItemOut(sku=i.sku, quantity=i.quantity, unit_amount=i.unit_amount)
            for i in order.items
        ],
        points_used=order.points_used,
        coupon_code=order.coupon_code,
        fulfillment=order.fulfillment,
        status=OrderStatus(order.status),
        refunded_amount=order.refunded_amount,
        reserved_amount=order.reserved_amount,
        refundable_amount=order.paid_amount - order.reserved_amount
        if order.status in REFUNDABLE_ORDER_STATUSES
        else 0,
        restored_points=await repo.restored_points(order.order_no),
        restocked_items=await repo.restocked(order.order_no),
        coupon=CouponOut(
            code=coupon.code,
            status=coupon.status,
            released_by_refund_no=coupon.released_by_refund_no,
        )
        if coupon
        else None,
        refunds=[refund_out(r) for r in await repo.refunds(order.order_no)],
        created_at=order.created_at,
    )
