"""Repositories: typed queries over one session; the caller owns the transaction, commits once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CTE,
    Insert,
    Select,
    String,
    Update,
    bindparam,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
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
from refunds.db.records import refund_events, table
from refunds.db.records import refunds as refunds_table
from refunds.domain.errors import OrderNotFound, RefundNotFound
from refunds.domain.messages import GatewayStatus
from refunds.domain.notifications import NotificationOutcome


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

    async def on_payment(self, channel: str, payment_ref: str) -> str | None:
        """The order_no of the channel's order registered on this payment, if any."""
        stmt = select(Order.order_no).where(
            Order.channel == channel, Order.payment_ref == payment_ref
        )
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

    # Built once, as each webhook's first statement: SQLAlchemy keys its compiled form by the
    # statement object, so a statement built per call is built and keyed per call.
    LOCKED_WITH_PAYMENT_REF = (
        select(Refund, Order.payment_ref)
        .join(Order, Order.order_no == Refund.order_no)
        .where(Refund.refund_no == bindparam("refund_no"))
        .with_for_update(of=Refund)
        .execution_options(populate_existing=True)
    )

    async def find_with_payment_ref(self, refund_no: str) -> tuple[Refund, str | None] | None:
        """The refund, locked, with its order's payment: what a notification is checked against,
        in one round trip."""
        stmt = self.LOCKED_WITH_PAYMENT_REF
        row = (await self.session.execute(stmt, {"refund_no": refund_no})).one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def get(self, refund_no: str, *, lock: bool = False) -> Refund:
        refund = await self.find(refund_no, lock=lock)
        if refund is None:
            raise RefundNotFound(f"refund {refund_no} not found")
        return refund

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


# Core tables, not the mapped classes: no ORM bulk-persistence machinery on the webhook path.
NOTIFICATIONS = table(GatewayNotificationRow)


@dataclass(frozen=True)
class HeardFromGateway:
    """What a notification writes about one refund of ours beside its own row: the refund's
    timeline entry (every answer stays on the timeline) and, when it is news, the refund's new
    gateway status."""

    refund_no: str
    detail: dict[str, Any]
    dedupe_key: str
    news: GatewayStatus | None = None


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
        *,
        outcome: NotificationOutcome = NotificationOutcome.SIGNALLED,
        heard: Sequence[HeardFromGateway] = (),
    ) -> int | None:
        """Insert the notification's row with its outcome, and what it tells each refund, in one
        statement (issue 11: each round trip is paid for each webhook of each refund). None, and
        nothing written, when this gateway event was recorded already (a redelivery); a
        concurrent insert of the same event waits for the first to end."""
        row = {
            "gateway": gateway,
            "notification_id": notification_id,
            "event_type": event_type,
            "refund_no": refund_no,
            "status": status.value if status else None,
            "payload": payload,
            "outcome": outcome.value,
        }
        values: dict[str, Any] = {f"row_{name}": value for name, value in row.items()}
        for index, one in enumerate(heard):
            values[f"r{index}_refund_no"] = one.refund_no
            values[f"r{index}_detail"] = one.detail
            values[f"r{index}_dedupe_key"] = one.dedupe_key
            if one.news is not None:
                values[f"r{index}_news"] = one.news.value
        stmt = _record_statement(tuple(one.news is not None for one in heard))
        return (await self.session.execute(stmt, values)).scalar_one_or_none()

    async def set_outcome(self, row_id: int, outcome: NotificationOutcome) -> None:
        stmt = (
            update(NOTIFICATIONS).where(NOTIFICATIONS.c.id == row_id).values(outcome=outcome.value)
        )
        await self.session.execute(stmt)


RECORDED = ("gateway", "notification_id", "event_type", "refund_no", "status", "payload", "outcome")


# Built once per shape (how many refunds, which with news), values bound at execution: building
# and keying a statement this size cost as much of the API's CPU as sending it. No value is
# named after a column: SQLAlchemy would add it to the SET of the UPDATE in the statement.
@lru_cache(maxsize=32)
def _record_statement(news: tuple[bool, ...]) -> Select[int]:
    bound = {name: bindparam(f"row_{name}", type_=NOTIFICATIONS.c[name].type) for name in RECORDED}
    claim = (
        insert(NOTIFICATIONS)
        .values(bound)
        .on_conflict_do_nothing(index_elements=["gateway", "notification_id"])
        .returning(NOTIFICATIONS.c.id)
        .cte("claim")
    )
    # Each effect reads the claim's RETURNING: a redelivery's row is not inserted, so neither is
    # anything it would tell the refunds.
    effects = [
        effect.cte(f"{name}_{index}")
        for index, has_news in enumerate(news)
        for name, effect in _effects(claim, index, has_news)
    ]
    return select(claim.c.id).add_cte(*effects)


def _effects(claim: CTE, index: int, news: bool) -> Iterator[tuple[str, Insert | Update]]:
    """The `index`th refund's timeline entry (deduplicated like `RefundRepository.add_event`),
    and its gateway status when it is news; both only when the claim inserted the row."""
    refund_no = bindparam(f"r{index}_refund_no", type_=String)
    entry = select(
        refund_no,
        literal("gateway", String),
        literal("gateway_notification", String),
        bindparam(f"r{index}_detail", type_=JSONB),
        bindparam(f"r{index}_dedupe_key", type_=String),
    ).select_from(claim)
    columns = ["refund_no", "actor", "event", "detail", "dedupe_key"]
    yield (
        "timeline",
        insert(refund_events)
        .from_select(columns, entry)
        .on_conflict_do_nothing(index_elements=["dedupe_key"]),
    )
    if news:
        yield (
            "news",
            update(refunds_table)
            .where(refunds_table.c.refund_no == refund_no, exists(select(claim.c.id)))
            .values(gateway_status=bindparam(f"r{index}_news", type_=String)),
        )
