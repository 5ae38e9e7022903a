"""Repositories: typed queries over one session; the caller owns the transaction, commits once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from refunds.db.models import (
    Coupon,
    GatewayNotificationRow,
    InventoryMovement,
    Order,
    PointsLedger,
    Refund,
    RefundEvent,
)
from refunds.domain.errors import OrderNotFound, RefundNotFound
from refunds.domain.messages import GatewayStatus
from refunds.domain.notifications import NotificationOutcome
from refunds.domain.transitions import is_news


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, order_no: str, *, lock: bool = False, items: bool = True) -> Order | None:
        """`items=False` skips the query for the order's lines when the caller needs money only."""
        stmt = select(Order).where(Order.order_no == order_no)
        if items:
            stmt = stmt.options(selectinload(Order.items))
        if lock:
            # A locked read must see the row as it is now, not as this session last loaded it.
            stmt = stmt.with_for_update(of=Order).execution_options(populate_existing=True)
        return (await self.session.scalars(stmt)).one_or_none()

    async def payment_ref(self, order_no: str) -> str | None:
        """The payment the order was paid with (Stripe PaymentIntent, WeChat transaction_id)."""
        stmt = select(Order.payment_ref).where(Order.order_no == order_no)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get(self, order_no: str, *, lock: bool = False, items: bool = True) -> Order:
        order = await self.find(order_no, lock=lock, items=items)
        if order is None:
            raise OrderNotFound(f"order {order_no} not found")
        return order

    async def refunds(self, order_no: str) -> Sequence[Refund]:
        stmt = select(Refund).where(Refund.order_no == order_no).order_by(Refund.id)
        return (await self.session.scalars(stmt)).all()

    async def restored_points(self, order_no: str) -> int:
        stmt = select(func.coalesce(func.sum(PointsLedger.points), 0)).where(
            PointsLedger.order_no == order_no
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def restocked(self, order_no: str) -> dict[str, int]:
        stmt = (
            select(InventoryMovement.sku, func.sum(InventoryMovement.quantity))
            .where(InventoryMovement.order_no == order_no)
            .group_by(InventoryMovement.sku)
            .having(func.sum(InventoryMovement.quantity) != 0)  # restocked, then taken back
        )
        return {sku: int(qty) for sku, qty in (await self.session.execute(stmt)).all()}

    async def coupon(self, code: str | None) -> Coupon | None:
        if code is None:
            return None
        return await self.session.get(Coupon, code)


class RefundRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, refund_no: str, *, lock: bool = False) -> Refund | None:
        stmt = select(Refund).where(Refund.refund_no == refund_no)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(stmt)).one_or_none()

    async def find_with_payment_ref(self, refund_no: str) -> tuple[Refund, str | None] | None:
        """The refund, locked, with its order's payment: what a notification is checked against,
        in one round trip."""
        stmt = (
            select(Refund, Order.payment_ref)
            .join(Order, Order.order_no == Refund.order_no)
            .where(Refund.refund_no == refund_no)
            .with_for_update(of=Refund)
            .execution_options(populate_existing=True)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def get(self, refund_no: str, *, lock: bool = False) -> Refund:
        refund = await self.find(refund_no, lock=lock)
        if refund is None:
            raise RefundNotFound(f"refund {refund_no} not found")
        return refund

    async def advance_gateway_status(self, refund: Refund, status: GatewayStatus) -> bool:
        """Record the gateway's status if it is news (forward, or a late failure); the caller
        holds the refund row lock. True when it was news."""
        current = GatewayStatus(refund.gateway_status) if refund.gateway_status else None
        if not is_news(current, status):
            return False
        refund.gateway_status = status.value
        return True

    async def events(self, refund_no: str) -> Sequence[RefundEvent]:
        stmt = (
            select(RefundEvent).where(RefundEvent.refund_no == refund_no).order_by(RefundEvent.id)
        )
        return (await self.session.scalars(stmt)).all()

    async def add_event(
        self,
        refund_no: str,
        actor: str,
        event: str,
        detail: dict[str, Any] | None = None,
        dedupe_key: str | None = None,
    ) -> bool:
        """Append to the timeline; False when `dedupe_key` was already written."""
        stmt = (
            insert(RefundEvent)
            .values(
                refund_no=refund_no,
                actor=actor,
                event=event,
                detail=detail or {},
                dedupe_key=dedupe_key,
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(RefundEvent.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def search(
        self,
        *,
        status: str | None,
        order_no: str | None,
        channel: str | None,
        after_id: int | None,
        limit: int,
    ) -> Sequence[Refund]:
        """Keyset pagination by id: stable under inserts, no OFFSET scans."""
        stmt = select(Refund).order_by(Refund.id).limit(limit)
        if status:
            stmt = stmt.where(Refund.status == status)
        if order_no:
            stmt = stmt.where(Refund.order_no == order_no)
        if channel:
            stmt = stmt.where(Refund.channel == channel)
        if after_id is not None:
            stmt = stmt.where(Refund.id > after_id)
        return (await self.session.scalars(stmt)).all()


class GatewayNotificationRepository:
    """The verified webhooks, one row per gateway event id: the dedupe key (issue 11: and what
    was done with each)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self,
        gateway: str,
        notification_id: str,
        event_type: str,
        refund_no: str | None,
        status: GatewayStatus | None,
        payload: dict[str, Any],
    ) -> int | None:
        """Insert the notification's row; None when this gateway event was recorded already (a
        redelivery). A concurrent insert of the same event waits for the first to end."""
        stmt = (
            insert(GatewayNotificationRow)
            .values(
                gateway=gateway,
                notification_id=notification_id,
                event_type=event_type,
                refund_no=refund_no,
                status=status.value if status else None,
                payload=payload,
            )
            .on_conflict_do_nothing(index_elements=["gateway", "notification_id"])
            .returning(GatewayNotificationRow.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def set_outcome(self, row_id: int, outcome: NotificationOutcome) -> None:
        stmt = (
            update(GatewayNotificationRow)
            .where(GatewayNotificationRow.id == row_id)
            .values(outcome=outcome.value)
        )
        await self.session.execute(stmt)
