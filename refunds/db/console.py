"""Queries of the approver and ops console (issue 12): its sessions, the approvals inbox, the ops
queue, what waits for whom, and the fingerprint its pages poll to update themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from refunds.db.models import ConsoleSession, Order, Refund, RefundEvent, Restoration
from refunds.domain.messages import RefundStatus

# Events that carry a gateway's answer (or the lack of one), shown beside abnormal refunds.
GATEWAY_EVENTS = (
    "gateway_submitted",
    "gateway_notification",
    "gateway_polled",
    "gateway_lookup_failed",
    "gateway_refused",
    "gateway_unreachable",
    "gateway_refund_mismatch",
    "outcome_deadline_passed",
)
DECISION_EVENTS = ("approved", "rejected")


@dataclass(frozen=True)
class AmountRange:
    """Bounds in minor units per currency exponent: `{2: 3000}` is 30.00 in USD and CNY."""

    low: dict[int, int]
    high: dict[int, int]


class ConsoleSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, id_hash: str, now: datetime) -> ConsoleSession | None:
        stmt = select(ConsoleSession).where(
            ConsoleSession.id_hash == id_hash, ConsoleSession.expires_at > now
        )
        return (await self.session.scalars(stmt)).one_or_none()

    def add(self, row: ConsoleSession) -> None:
        self.session.add(row)

    async def delete(self, id_hash: str) -> None:
        await self.session.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == id_hash))

    async def purge_expired(self, now: datetime) -> None:
        await self.session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))

    async def set(self, id_hash: str, **values: Any) -> None:
        await self.session.execute(
            update(ConsoleSession).where(ConsoleSession.id_hash == id_hash).values(**values)
        )


class ConsoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def pending(
        self,
        *,
        channel: str | None,
        amounts: AmountRange,
        exponents: dict[str, int],
        requested_before: datetime | None,
        limit: int = 200,
    ) -> Sequence[tuple[Refund, Order]]:
        """Refunds waiting for a decision, oldest first, with their orders."""
        stmt = _with_orders(RefundStatus.PENDING_APPROVAL).order_by(Refund.created_at, Refund.id)
        if channel:
            stmt = stmt.where(Refund.channel == channel)
        if requested_before is not None:
            stmt = stmt.where(Refund.created_at <= requested_before)
        for bounds, compare in ((amounts.low, _ge), (amounts.high, _le)):
            if bounds:
                stmt = stmt.where(compare(Refund.amount, _per_exponent(bounds, exponents)))
        return (await self.session.execute(stmt.limit(limit))).all()

    async def in_status(
        self, status: RefundStatus, *, moved_before: datetime | None = None, limit: int = 200
    ) -> Sequence[tuple[Refund, Order]]:
        """Refunds in one status, longest waiting first (`updated_at` is their last move)."""
        stmt = _with_orders(status).order_by(Refund.updated_at, Refund.id).limit(limit)
        if moved_before is not None:
            stmt = stmt.where(Refund.updated_at <= moved_before)
        return (await self.session.execute(stmt)).all()

    async def gateway_events(self, refund_nos: Sequence[str]) -> dict[str, list[RefundEvent]]:
        stmt = (
            select(RefundEvent)
            .where(
                RefundEvent.refund_no.in_(refund_nos),
                or_(RefundEvent.event.in_(GATEWAY_EVENTS), RefundEvent.actor == "gateway"),
            )
            .order_by(RefundEvent.id)
        )
        found: dict[str, list[RefundEvent]] = {no: [] for no in refund_nos}
        for event in (await self.session.scalars(stmt)).all():
            found[event.refund_no].append(event)
        return found

    async def decided_by(self, actor: str, limit: int = 10) -> Sequence[tuple[Refund, Order]]:
        """The refunds this person approved or rejected last, newest decision first."""
        latest = (
            select(RefundEvent.refund_no, func.max(RefundEvent.id).label("last"))
            .where(RefundEvent.actor == actor, RefundEvent.event.in_(DECISION_EVENTS))
            .group_by(RefundEvent.refund_no)
            .subquery()
        )
        stmt = (
            select(Refund, Order)
            .join(latest, latest.c.refund_no == Refund.refund_no)
            .join(Order, Order.order_no == Refund.order_no)
            .order_by(latest.c.last.desc())
            .limit(limit)
        )
        return (await self.session.execute(stmt)).all()

    async def of_customer(self, user_id: str, limit: int = 200) -> Sequence[tuple[Refund, Order]]:
        stmt = (
            select(Refund, Order)
            .join(Order, Order.order_no == Refund.order_no)
            .where(Order.user_id == user_id)
            .order_by(Refund.id.desc())
            .limit(limit)
        )
        return (await self.session.execute(stmt)).all()

    async def restorations(self, refund_no: str) -> Sequence[Restoration]:
        stmt = (
            select(Restoration)
            .where(Restoration.refund_no == refund_no)
            .order_by(Restoration.created_at)
        )
        return (await self.session.scalars(stmt)).all()

    async def waiting(self, sub: str, roles: frozenset[str]) -> int:
        """What waits for this person: refunds to decide (not their own), abnormal refunds to
        resolve, or, for a customer, their refunds still under way."""
        conditions: list[ColumnElement[bool]] = []
        if roles & {"approver", "admin"}:
            conditions.append(
                and_(
                    Refund.status == RefundStatus.PENDING_APPROVAL,
                    Refund.requested_by != sub,
                )
            )
        if roles & {"ops", "admin"}:
            conditions.append(Refund.status == RefundStatus.ABNORMAL)
        stmt = select(func.count()).select_from(Refund)
        if conditions:
            stmt = stmt.where(or_(*conditions))
        elif "customer" in roles:
            stmt = stmt.join(Order, Order.order_no == Refund.order_no).where(
                Order.user_id == sub,
                Refund.status.in_(
                    [RefundStatus.PENDING_APPROVAL, RefundStatus.PROCESSING, RefundStatus.ABNORMAL]
                ),
            )
        else:
            return 0
        return int((await self.session.execute(stmt)).scalar_one())

    async def version(self) -> str:
        """Changes whenever a refund is requested or moves: every move appends to a timeline
        in the same transaction."""
        last = (await self.session.execute(select(func.max(RefundEvent.id)))).scalar_one()
        return str(last or 0)


def _with_orders(status: RefundStatus) -> Select[Refund, Order]:
    return (
        select(Refund, Order)
        .join(Order, Order.order_no == Refund.order_no)
        .where(Refund.status == status)
    )


def _per_exponent(bounds: dict[int, int], exponents: dict[str, int]) -> ColumnElement[int]:
    """The bound in the refund's own minor units: currencies differ in decimals (JPY has 0)."""
    whens = [
        (Refund.currency.in_([c for c, e in exponents.items() if e == exponent]), value)
        for exponent, value in bounds.items()
        if exponent != 2
    ]
    default = bounds[2]
    if not whens:
        return literal(default, BigInteger)
    return case(*whens, else_=default)


def _ge(column: Any, bound: Any) -> ColumnElement[bool]:
    return column >= bound  # type: ignore[no-any-return]


def _le(column: Any, bound: Any) -> ColumnElement[bool]:
    return column <= bound  # type: ignore[no-any-return]


def age_cutoff(now: datetime, minutes: int | None) -> datetime | None:
    return None if not minutes else now - timedelta(minutes=minutes)
