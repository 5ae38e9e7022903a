"""Rows for the ledger activity tests, built directly through the ORM, and every ledger a
restore (or its reversal) touches, read back as plain comparable values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.restore import RestoreActivities
from refunds.db.models import (
    Coupon,
    InventoryMovement,
    InventoryStock,
    Order,
    OrderItem,
    PointsLedger,
    Refund,
    RefundEvent,
    Restoration,
)
from refunds.domain.messages import RestoreInput, RestoreResult
from tests.factories import uid

Sessions = async_sessionmaker[AsyncSession]


async def seed_order(
    sessionmaker: Sessions,
    *,
    paid: int = 10000,
    points: int = 0,
    coupon: bool = False,
    fulfillment: str = "unfulfilled",
    items: Sequence[tuple[str, int]] = (),
    stock: dict[str, int] | None = None,
) -> Order:
    """A paid order with its items (sku, quantity), optional used coupon and stock on hand."""
    order = Order(
        order_no=uid("ord"),
        user_id=uid("cust"),
        channel="stripe",
        currency="USD",
        total_amount=paid,
        paid_amount=paid,
        payment_ref=uid("pi"),
        points_used=points,
        coupon_code=uid("cpn") if coupon else None,
        fulfillment=fulfillment,
        status="paid",
        refunded_amount=0,
        reserved_amount=0,
    )
    order.items = [OrderItem(sku=sku, quantity=qty, unit_amount=100) for sku, qty in items]
    async with sessionmaker.begin() as session:
        session.add(order)
        if order.coupon_code:
            session.add(
                Coupon(
                    code=order.coupon_code,
                    user_id=order.user_id,
                    status="used",
                    order_no=order.order_no,
                )
            )
        for sku, on_hand in (stock or {}).items():
            session.add(InventoryStock(sku=sku, on_hand=on_hand))
    return order


async def seed_refund(
    sessionmaker: Sessions, order: Order, amount: int, items: Sequence[tuple[str, int]] = ()
) -> str:
    """A refund that has passed the gateway (still processing: restore comes before finalize);
    its amount is reserved on the order as apply would have done."""
    refund_no = uid("rf")
    async with sessionmaker.begin() as session:
        session.add(
            Refund(
                refund_no=refund_no,
                order_no=order.order_no,
                amount=amount,
                currency=order.currency,
                channel=order.channel,
                reason="test",
                items=[{"sku": sku, "quantity": qty} for sku, qty in items],
                source="customer",
                requested_by=order.user_id,
                status="processing",
                request_fingerprint=uid("fp"),
                needs_manual_return=False,
            )
        )
        row = await session.get(Order, order.id, with_for_update=True)
        assert row is not None
        row.reserved_amount += amount
    return refund_no


async def run_all(restore: RestoreActivities, refund_no: str) -> list[RestoreResult]:
    """The workflow's restore step: points, inventory, coupon, in that order."""
    entry = RestoreInput(refund_no)
    return [
        await restore.restore_points(entry),
        await restore.restore_inventory(entry),
        await restore.release_coupon(entry),
    ]


async def ledgers(sessionmaker: Sessions, order: Order) -> dict[str, Any]:
    """Everything a restore may touch for this order, as plain comparable values."""
    skus = [i.sku for i in order.items]
    async with sessionmaker() as session:
        refunds = (
            await session.scalars(select(Refund).where(Refund.order_no == order.order_no))
        ).all()
        refund_nos = [r.refund_no for r in refunds]

        async def rows(stmt: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in (await session.execute(stmt)).all())

        return {
            "points": await rows(
                select(PointsLedger.refund_no, PointsLedger.kind, PointsLedger.points).where(
                    PointsLedger.order_no == order.order_no
                )
            ),
            "stock": await rows(
                select(InventoryStock.sku, InventoryStock.on_hand).where(
                    InventoryStock.sku.in_(skus)
                )
            ),
            "movements": await rows(
                select(
                    InventoryMovement.refund_no, InventoryMovement.sku, InventoryMovement.quantity
                ).where(InventoryMovement.order_no == order.order_no)
            ),
            "restorations": sorted(
                (r.refund_no, r.kind, sorted(r.detail.items()))
                for r in (
                    await session.scalars(
                        select(Restoration).where(Restoration.refund_no.in_(refund_nos))
                    )
                ).all()
            ),
            "coupon": await rows(
                select(Coupon.status, Coupon.released_by_refund_no).where(
                    Coupon.code == order.coupon_code
                )
            ),
            "events": sorted(
                (e.refund_no, e.event, e.dedupe_key or "", sorted(e.detail.items()))
                for e in (
                    await session.scalars(
                        select(RefundEvent).where(RefundEvent.refund_no.in_(refund_nos))
                    )
                ).all()
            ),
            "manual_return": sorted((r.refund_no, r.needs_manual_return) for r in refunds),
        }


async def points_of(sessionmaker: Sessions, refund_no: str) -> int:
    async with sessionmaker() as session:
        return int(
            (
                await session.execute(
                    select(PointsLedger.points).where(PointsLedger.refund_no == refund_no)
                )
            ).scalar_one()
        )


async def coupon_of(sessionmaker: Sessions, order: Order) -> tuple[str, str | None]:
    async with sessionmaker() as session:
        coupon = await session.get(Coupon, order.coupon_code)
        assert coupon is not None
        return coupon.status, coupon.released_by_refund_no


def timeline(state: dict[str, Any], refund_no: str) -> list[str]:
    return [event for no, event, _, _ in state["events"] if no == refund_no]
