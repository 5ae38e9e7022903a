"""Taking restores back when a refund that had succeeded ends `failed` after all (SPEC §4: the
gateway reports it failed days later, ops resolve it as failed). The customer got no money back,
so the points, stock and coupon the refund gave back are taken back, and a new refund of the
same order restores them again, exactly once.

The activity (`RestoreActivities.reverse_restores`) claims the (refund_no, "reversal") ledger
row in the same transaction as these effects, so a retry changes nothing. What cannot be taken
back (stock sold again, a coupon used again) is taken back as far as it goes and named on the
timeline for ops.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from refunds.db.models import Coupon, InventoryMovement, InventoryStock, PointsLedger
from refunds.db.records import OrderRecord, RefundRecord

Detail = dict[str, str | int | None]


async def take_back(session: AsyncSession, refund: RefundRecord, order: OrderRecord) -> Detail:
    """Every effect of the reversal, in the caller's transaction (which claims its ledger row).
    The coupon before the stock rows: the order every step locks them in."""
    points = await _take_back_points(session, refund, order)
    coupon = await _take_back_coupon(session, refund, order)
    return {**points, **await _take_back_stock(session, refund), **coupon}


async def _take_back_points(
    session: AsyncSession, refund: RefundRecord, order: OrderRecord
) -> Detail:
    restored = await session.scalar(
        select(PointsLedger.points).where(
            PointsLedger.refund_no == refund.refund_no, PointsLedger.kind == "refund_restore"
        )
    )
    if not restored:
        return {"points_taken_back": 0}
    session.add(
        PointsLedger(
            user_id=order.user_id,
            order_no=order.order_no,
            refund_no=refund.refund_no,
            kind="refund_reversal",
            points=-restored,
        )
    )
    return {"points_taken_back": restored}


async def _take_back_stock(session: AsyncSession, refund: RefundRecord) -> Detail:
    """Unstock what the refund restocked; units sold again since cannot be, and are counted."""
    restocked = (
        await session.execute(
            select(InventoryMovement.sku, InventoryMovement.quantity)
            .where(
                InventoryMovement.refund_no == refund.refund_no,
                InventoryMovement.kind == "refund_restock",
            )
            .order_by(InventoryMovement.sku)
        )
    ).all()
    unstocked = 0
    shortfalls: dict[str, int] = {}
    for sku, quantity in restocked:
        stock = await session.get(InventoryStock, sku, with_for_update=True)
        taken = min(quantity, stock.on_hand if stock is not None else 0)
        if stock is not None and taken:
            stock.on_hand -= taken
            stock.updated_at = datetime.now(UTC)
            session.add(
                InventoryMovement(
                    sku=sku,
                    order_no=refund.order_no,
                    refund_no=refund.refund_no,
                    kind="refund_reversal",
                    quantity=-taken,
                )
            )
        unstocked += taken
        if quantity > taken:
            shortfalls[f"shortfall:{sku}"] = quantity - taken
    return {"unstocked": unstocked, "unstock_shortfall": sum(shortfalls.values()), **shortfalls}


async def _take_back_coupon(
    session: AsyncSession, refund: RefundRecord, order: OrderRecord
) -> Detail:
    if not order.coupon_code:
        return {}
    coupon = await session.get(Coupon, order.coupon_code, with_for_update=True)
    if coupon is None or coupon.released_by_refund_no != refund.refund_no:
        return {"coupon_code": order.coupon_code, "coupon_taken_back": 0}
    if coupon.status != "available":  # used again since: only ops can settle that
        return {"coupon_code": coupon.code, "coupon_taken_back": 0, "coupon_used_again": 1}
    coupon.status = "used"
    coupon.order_no = order.order_no
    coupon.released_by_refund_no = None
    coupon.updated_at = datetime.now(UTC)
    return {"coupon_code": coupon.code, "coupon_taken_back": 1}
