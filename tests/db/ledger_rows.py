"""Refunds written straight into the ledger, in any status and at any age, for tests of the
reads over it; removed again afterwards, so no later test (a reconciliation run, a gauge) meets a
refund that has no workflow behind it."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.models import Order, Refund, RefundEvent
from refunds.domain.messages import Channel, OrderStatus, RefundSource, RefundStatus
from tests.factories import uid


class LedgerRows:
    """`async with LedgerRows(sessionmaker) as rows:` removes what it wrote on the way out."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.order_nos: list[str] = []

    async def __aenter__(self) -> LedgerRows:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.remove()

    async def refunds(
        self,
        *statuses: RefundStatus,
        channel: Channel = Channel.STRIPE,
        created_at: datetime | None = None,
    ) -> list[Refund]:
        """One refund per status given, on one fresh order, committed."""
        order = _order(channel, amount=100 * (len(statuses) + 1))
        rows = [_refund(order, status, created_at) for status in statuses]
        async with self.sessionmaker() as session:
            session.add(order)
            await session.flush()  # the refunds' foreign key needs the order first
            session.add_all(rows)
            await session.commit()
        self.order_nos.append(order.order_no)
        return rows

    async def remove(self) -> None:
        async with self.sessionmaker() as session:
            # Timeline entries the code under test wrote for these refunds.
            ours = select(Refund.refund_no).where(Refund.order_no.in_(self.order_nos))
            await session.execute(delete(RefundEvent).where(RefundEvent.refund_no.in_(ours)))
            await session.execute(delete(Refund).where(Refund.order_no.in_(self.order_nos)))
            await session.execute(delete(Order).where(Order.order_no.in_(self.order_nos)))
            await session.commit()


def _order(channel: Channel, amount: int) -> Order:
    return Order(
        order_no=uid("ord"),
        user_id=uid("cust"),
        channel=channel,
        currency="USD" if channel == Channel.STRIPE else "CNY",
        total_amount=amount,
        paid_amount=amount,
        payment_ref=uid("pay"),
        status=OrderStatus.PAID,
    )


def _refund(order: Order, status: RefundStatus, created_at: datetime | None) -> Refund:
    refund = Refund(
        refund_no=uid("rf"),
        order_no=order.order_no,
        amount=100,
        currency=order.currency,
        channel=order.channel,
        source=RefundSource.ADMIN,
        requested_by=uid("admin"),
        status=status,
        request_fingerprint="0" * 64,
    )
    if created_at is not None:
        refund.created_at = created_at
    return refund
