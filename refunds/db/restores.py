"""What a refund's restores read, in one statement, once its order's row is locked (issue 11):
every restore of an order's refunds locks that row first, so what this reads cannot change
before the step commits (a read before the lock could miss a restore committed meanwhile)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, bindparam, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from refunds.db.records import coupons, order_items, points_ledger, refunds, restorations

POINTS, INVENTORY, COUPON = "points", "inventory", "coupon"
REVERSAL = "reversal"  # the restores of a refund that failed after all, taken back

Detail = dict[str, Any]


@dataclass(frozen=True)
class RestoreFacts:
    """`done`: the restores this refund claimed already (kind → detail). `refunded_before`: the
    amount of the order's refunds that passed their points restore and were not taken back since,
    whatever order they finalized in. `restored_points`: the points the order got back so far.
    `ordered`: the order's lines (sku → quantity). `coupon_status`: the order's coupon, locked."""

    done: dict[str, Detail]
    refunded_before: int
    restored_points: int
    ordered: dict[str, int]
    coupon_status: str | None


def _facts_statement() -> Any:
    refund_no = bindparam("refund_no", type_=String)
    order_no = bindparam("order_no", type_=String)
    done = select(func.jsonb_object_agg(restorations.c.kind, restorations.c.detail)).where(
        restorations.c.refund_no == refund_no
    )
    claim, reversal = restorations.alias("claim"), restorations.alias("reversal")
    taken_back = exists().where(
        reversal.c.refund_no == refunds.c.refund_no, reversal.c.kind == REVERSAL
    )  # by primary key, per refund of this order
    refunded_before = (
        select(func.coalesce(func.sum(refunds.c.amount), 0))
        .join(claim, and_(claim.c.refund_no == refunds.c.refund_no, claim.c.kind == POINTS))
        .where(refunds.c.order_no == order_no, ~taken_back)
    )
    restored = select(func.coalesce(func.sum(points_ledger.c.points), 0)).where(
        points_ledger.c.order_no == order_no
    )
    ordered = select(func.jsonb_object_agg(order_items.c.sku, order_items.c.quantity)).where(
        order_items.c.order_id == bindparam("order_id")
    )
    # Locked after the order, as every step that touches a coupon does (then stock rows).
    coupon = (
        select(coupons.c.status).where(coupons.c.code == bindparam("coupon_code")).with_for_update()
    )
    return select(
        *(q.scalar_subquery() for q in (done, refunded_before, restored, ordered, coupon))
    )


_FACTS = _facts_statement()


async def restore_facts(
    session: AsyncSession, refund_no: str, order_no: str, order_id: int, coupon_code: str | None
) -> RestoreFacts:
    """The caller holds the order's row lock."""
    params = {
        "refund_no": refund_no,
        "order_no": order_no,
        "order_id": order_id,
        "coupon_code": coupon_code,
    }
    done, refunded_before, restored, ordered, coupon = (await session.execute(_FACTS, params)).one()
    return RestoreFacts(
        done=dict(done or {}),
        refunded_before=int(refunded_before),
        restored_points=int(restored),
        ordered={sku: int(q) for sku, q in (ordered or {}).items()},
        coupon_status=coupon,
    )
