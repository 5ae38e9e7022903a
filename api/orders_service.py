"""Registering and cancelling orders: idempotent by order_no, a different body is a conflict."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import OrderIn
from refunds.db.models import Coupon, Order, OrderItem
from refunds.db.repositories import OrderRepository
from refunds.domain.errors import OrderConflict, OrderNotCancellable


def _same_order(order: Order, body: OrderIn) -> bool:
    fields = body.model_dump(exclude={"items"})
    if any(getattr(order, k) != v for k, v in fields.items()):
        return False
    mine = sorted((i.sku, i.quantity, i.unit_amount) for i in order.items)
    return mine == sorted((i.sku, i.quantity, i.unit_amount) for i in body.items)


async def register_order(session: AsyncSession, body: OrderIn) -> tuple[Order, bool]:
    """(order, created). The same body again is the same order; another body is 409."""
    repo = OrderRepository(session)
    existing = await repo.find(body.order_no)
    if existing is not None:
        if not _same_order(existing, body):
            raise OrderConflict(f"order {body.order_no} exists with different fields")
        return existing, False
    if body.paid_amount > body.total_amount:
        raise OrderConflict("paid_amount exceeds total_amount")
    order = Order(**body.model_dump(exclude={"items"}), refunded_amount=0, reserved_amount=0)
    order.items = [OrderItem(**i.model_dump()) for i in body.items]
    session.add(order)
    if body.coupon_code:
        await session.execute(
            insert(Coupon)
            .values(
                code=body.coupon_code, user_id=body.user_id, status="used", order_no=body.order_no
            )
            .on_conflict_do_update(
                index_elements=["code"],
                set_={
                    "status": "used",
                    "order_no": body.order_no,
                    "user_id": body.user_id,
                    "updated_at": datetime.now(UTC),
                },
            )
        )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()  # a concurrent registration of the same order_no won
        return await register_order(session, body)
    return await repo.get(body.order_no), True


async def cancel_order(session: AsyncSession, order: Order) -> Order:
    """pending → cancelled; refunded → cancelled; a paid order must be refunded first (409)."""
    locked = await OrderRepository(session).get(order.order_no, lock=True)
    if locked.status == "cancelled":
        return locked
    if locked.status not in ("pending", "refunded"):
        raise OrderNotCancellable(
            f"order {locked.order_no} is {locked.status}: refund it fully before cancelling"
        )
    locked.status = "cancelled"
    locked.updated_at = datetime.now(UTC)
    await session.commit()
    return locked
