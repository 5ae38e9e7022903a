"""The transactional outbox (issue 13): a status move and its outgoing event commit together or
not at all, by construction (one session, one transaction)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.ledger import facts_of, move_refund
from refunds.db.models import EventDelivery, OutgoingEvent, RefundEvent, WebhookEndpoint
from refunds.db.outbox import WOKEN, refund_payload
from refunds.db.records import Records
from refunds.db.repositories import RefundRepository
from refunds.domain.messages import RefundStatus, Step
from refunds.domain.outgoing import DeliveryState, EventType, event_type_of_move
from tests.db.ledger_rows import LedgerRows

Sessions = async_sessionmaker[AsyncSession]


class CrashAfterTheEvent(Exception):
    pass


async def _approve(session: AsyncSession, refund_no: str) -> None:
    refund = await Records(session).refund(refund_no, lock=True)
    order = await Records(session).order(refund.order_no)
    step = Step(facts_of(order, refund), "approver-1", "approved", {}, RefundStatus.PROCESSING)
    await move_refund(session, refund, step)


async def _events(sessionmaker: Sessions, refund_no: str) -> list[OutgoingEvent]:
    async with sessionmaker() as session:
        stmt = select(OutgoingEvent).where(OutgoingEvent.refund_no == refund_no)
        return list((await session.scalars(stmt.order_by(OutgoingEvent.id))).all())


async def _forget(sessionmaker: Sessions, refund_no: str) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(delete(OutgoingEvent).where(OutgoingEvent.refund_no == refund_no))
        await session.execute(delete(RefundEvent).where(RefundEvent.refund_no == refund_no))


async def test_a_crash_after_the_event_insert_leaves_neither_the_move_nor_the_event(
    sessionmaker: Sessions,
) -> None:
    async with LedgerRows(sessionmaker) as rows:
        (refund,) = await rows.refunds(RefundStatus.PENDING_APPROVAL)
        with pytest.raises(CrashAfterTheEvent):
            async with sessionmaker.begin() as session:
                await _approve(session, refund.refund_no)
                assert await _events_in(session, refund.refund_no) == ["refund.approved"]
                raise CrashAfterTheEvent  # the process dies before COMMIT
        async with sessionmaker() as session:
            row = await RefundRepository(session).get(refund.refund_no)
            assert row.status == RefundStatus.PENDING_APPROVAL
            assert row.event_sequence == 0
        assert await _events(sessionmaker, refund.refund_no) == []


async def test_a_committed_move_has_exactly_its_event_with_the_next_sequence(
    sessionmaker: Sessions,
) -> None:
    async with LedgerRows(sessionmaker) as rows:
        (refund,) = await rows.refunds(RefundStatus.PENDING_APPROVAL)
        async with sessionmaker.begin() as session:
            endpoint = WebhookEndpoint(url="http://x.test/h", event_types=["*"], secret="s")
            session.add(endpoint)
        try:
            async with sessionmaker.begin() as session:
                await _approve(session, refund.refund_no)
                await _approve(session, refund.refund_no)  # a repeat of the move: no event
            assert endpoint.id in session.info[WOKEN]
            (event,) = await _events(sessionmaker, refund.refund_no)
            assert (event.type, event.sequence) == (EventType.REFUND_APPROVED, 1)
            async with sessionmaker() as session:
                row = await Records(session).refund(refund.refund_no)
                assert event.payload == {"refund": refund_payload(row)}
                assert row.event_sequence == 1
                stmt = select(EventDelivery).where(
                    EventDelivery.event_id == event.id, EventDelivery.endpoint_id == endpoint.id
                )
                (delivery,) = (await session.scalars(stmt)).all()
                assert (delivery.endpoint_id, delivery.state, delivery.lane) == (
                    endpoint.id,
                    DeliveryState.PENDING,
                    refund.refund_no,
                )
        finally:
            await _forget(sessionmaker, refund.refund_no)
            async with sessionmaker.begin() as session:
                await session.execute(
                    delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id)
                )


async def _events_in(session: AsyncSession, refund_no: str) -> list[str]:
    stmt = select(OutgoingEvent.type).where(OutgoingEvent.refund_no == refund_no)
    return list((await session.scalars(stmt)).all())


@pytest.mark.parametrize(
    ("to_status", "timeline_event", "expected"),
    [
        (RefundStatus.PROCESSING, "approved", EventType.REFUND_APPROVED),
        (RefundStatus.PROCESSING, "auto_approved", EventType.REFUND_PROCESSING),
        (RefundStatus.REJECTED, "rejected", EventType.REFUND_REJECTED),
        (RefundStatus.EXPIRED, "expired", EventType.REFUND_EXPIRED),
        (RefundStatus.SUCCEEDED, "succeeded", EventType.REFUND_SUCCEEDED),
        (RefundStatus.FAILED, "failed", EventType.REFUND_FAILED),
        (RefundStatus.ABNORMAL, "abnormal", EventType.REFUND_REQUIRES_ACTION),
        (RefundStatus.SUCCEEDED, "resolved_succeeded", EventType.REFUND_RESOLVED),
        (RefundStatus.FAILED, "resolved_failed", EventType.REFUND_RESOLVED),
    ],
)
def test_each_move_is_told_as_one_event_type(
    to_status: RefundStatus, timeline_event: str, expected: EventType
) -> None:
    assert event_type_of_move(to_status, timeline_event) == expected
