"""What a verified webhook costs the database, case by case (issue 11: CPU per refund): the
statements `accept_notification` sends are pinned, with the rows they leave. A regression guard:
every statement is a round trip and the API's CPU, paid for each of a refund's webhooks.

Counted: what goes through a cursor (not the pool's ping, nor psycopg's BEGIN), and commits."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from sqlalchemy import delete, event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.notifications import accept_notification
from refunds.db.engine import make_engine, make_sessionmaker
from refunds.db.models import GatewayNotificationRow, Refund, RefundEvent
from refunds.domain.messages import GatewayNotification, GatewayStatus, RefundStatus
from refunds.domain.notifications import NotificationOutcome as Outcome
from refunds.gateways.base import ParsedNotification
from tests.db.ledger_rows import LedgerRows
from tests.e2e.support import stripe_refunds
from tests.e2e.test_webhook_news import signalled_event_ids
from tests.factories import Shop, stripe_fault, uid, wait_event

Sessions = async_sessionmaker[AsyncSession]
G = GatewayStatus


@dataclass
class Sent:
    """The statements one webhook sent, by their first word, and its commits."""

    statements: list[str] = field(default_factory=list)
    commits: int = 0


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[Sent]:
    sent = Sent()

    def statement(_conn: Any, _cursor: Any, text: str, *_: Any) -> None:
        sent.statements.append(text.split(None, 1)[0].upper())

    def commit(_conn: Any) -> None:
        sent.commits += 1

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", statement)
    event.listen(sync, "commit", commit)
    try:
        yield sent
    finally:
        event.remove(sync, "before_cursor_execute", statement)
        event.remove(sync, "commit", commit)


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The API's engine, alone: no other caller's statements are counted."""
    engine = make_engine(database_url, pool_size=1)
    yield engine
    await engine.dispose()


@dataclass
class Webhooks:
    engine: AsyncEngine
    temporal: Client
    shop: Shop

    async def accept(self, notice: ParsedNotification) -> tuple[Outcome | None, Sent]:
        with counting(self.engine) as sent:
            async with make_sessionmaker(self.engine)() as session:
                outcome = await accept_notification(
                    session, self.temporal, self.shop.stack.settings, "stripe", notice
                )
        return outcome, sent


@pytest_asyncio.fixture
async def webhooks(engine: AsyncEngine, temporal: Client, shop: Shop) -> Webhooks:
    return Webhooks(engine, temporal, shop)


def stripe_event(*said: GatewayNotification, event_id: str | None = None) -> ParsedNotification:
    """A verified `refund.updated` (as the adapter parses it) saying this of each refund."""
    event_id = event_id or uid("evt")
    return ParsedNotification(
        notification_id=event_id,
        event_type="refund.updated",
        refunds=[
            dataclasses.replace(n, event_id=event_id, event_type="refund.updated") for n in said
        ],
        payload={"id": event_id, "object": "event", "type": "refund.updated"},
    )


async def row_of(sessionmaker: Sessions, event_id: str) -> tuple[str | None, str | None, str]:
    """The notification's row: (refund_no, status, outcome)."""
    async with sessionmaker() as session:
        stmt = select(GatewayNotificationRow).where(
            GatewayNotificationRow.gateway == "stripe",
            GatewayNotificationRow.notification_id == event_id,
        )
        row = (await session.scalars(stmt)).one()
    return row.refund_no, row.status, row.outcome


async def timeline_of(sessionmaker: Sessions, refund_no: str) -> list[tuple[str, str]]:
    """(event id, gateway status) of each gateway_notification on the refund's timeline."""
    async with sessionmaker() as session:
        stmt = (
            select(RefundEvent)
            .where(RefundEvent.refund_no == refund_no, RefundEvent.event == "gateway_notification")
            .order_by(RefundEvent.id)
        )
        rows = (await session.scalars(stmt)).all()
    return [(e.detail["event_id"], e.detail["gateway_status"]) for e in rows]


async def gateway_status(sessionmaker: Sessions, refund_no: str) -> str | None:
    async with sessionmaker() as session:
        stmt = select(Refund.gateway_status).where(Refund.refund_no == refund_no)
        return await session.scalar(stmt)


# The refund's row, locked and read with its payment; then one statement writes the
# notification's row with its outcome, the refund's timeline entry and its news.
LOCK_THEN_WRITE = ["SELECT", "WITH"]


async def test_news_is_two_statements_and_one_commit_and_a_repeat_or_redelivery_no_more(
    webhooks: Webhooks, sessionmaker: Sessions
) -> None:
    shop = webhooks.shop
    order = await shop.order(amount=4100)
    refund_no = uid("rf")
    await stripe_fault(shop.stack, refund_no, "pending_forever")
    await shop.refund(order, 4100, refund_no=refund_no)
    assert (await shop.approve(refund_no)).status_code == 200
    await wait_event(shop, refund_no, "gateway_submitted")  # the create said: processing
    [at_gateway] = await stripe_refunds(shop, refund_no)

    def said(status: GatewayStatus) -> GatewayNotification:
        return GatewayNotification(
            refund_no=refund_no,
            status=status,
            gateway_refund_id=at_gateway["id"],
            amount=4100,
            payment_ref=at_gateway["payment_intent"],
        )

    repeat = stripe_event(said(G.PROCESSING))
    outcome, sent = await webhooks.accept(repeat)
    assert (outcome, sent) == (Outcome.DUPLICATE, Sent(LOCK_THEN_WRITE, 1))
    assert await row_of(sessionmaker, repeat.notification_id) == (
        refund_no,
        "processing",
        "duplicate",
    )
    assert await gateway_status(sessionmaker, refund_no) == "processing"

    news = stripe_event(said(G.SUCCEEDED))
    outcome, sent = await webhooks.accept(news)
    assert (outcome, sent) == (Outcome.SIGNALLED, Sent(LOCK_THEN_WRITE, 1))
    assert await row_of(sessionmaker, news.notification_id) == (
        refund_no,
        "succeeded",
        "signalled",
    )
    assert await gateway_status(sessionmaker, refund_no) == "succeeded"
    await shop.wait_status(refund_no, "succeeded")
    assert news.notification_id in await signalled_event_ids(webhooks.temporal, refund_no)
    assert repeat.notification_id not in await signalled_event_ids(webhooks.temporal, refund_no)

    # The same event again: the write finds its row, writes nothing, and all is rolled back.
    outcome, sent = await webhooks.accept(news)
    assert (outcome, sent) == (None, Sent(LOCK_THEN_WRITE, 0))
    assert await row_of(sessionmaker, news.notification_id) == (
        refund_no,
        "succeeded",
        "signalled",
    )
    mine = {repeat.notification_id, news.notification_id}  # the sandbox's own come too
    ours = [entry for entry in await timeline_of(sessionmaker, refund_no) if entry[0] in mine]
    assert ours == [(repeat.notification_id, "processing"), (news.notification_id, "succeeded")]
    assert (await signalled_event_ids(webhooks.temporal, refund_no)).count(
        news.notification_id
    ) == 1


async def test_processing_news_is_recorded_with_a_lock_per_refund_named_and_one_write(
    webhooks: Webhooks, sessionmaker: Sessions
) -> None:
    async with LedgerRows(sessionmaker) as rows:
        refund_nos = [r.refund_no for r in await rows.refunds(*[RefundStatus.PROCESSING] * 3)]
        try:
            one = stripe_event(GatewayNotification(refund_nos[0], G.PROCESSING))
            outcome, sent = await webhooks.accept(one)
            assert (outcome, sent) == (Outcome.RECORDED, Sent(LOCK_THEN_WRITE, 1))
            assert await row_of(sessionmaker, one.notification_id) == (
                refund_nos[0],
                "processing",
                "recorded",
            )

            # A charge's event lists every refund of the charge: the most done for any of them.
            both = stripe_event(*(GatewayNotification(no, G.PROCESSING) for no in refund_nos[:2]))
            outcome, sent = await webhooks.accept(both)
            assert (outcome, sent) == (Outcome.RECORDED, Sent(["SELECT", "SELECT", "WITH"], 1))
            assert await row_of(sessionmaker, both.notification_id) == (
                refund_nos[0],
                "processing",
                "recorded",
            )
            assert [await gateway_status(sessionmaker, no) for no in refund_nos[:2]] == [
                "processing",
                "processing",
            ]
            assert await timeline_of(sessionmaker, refund_nos[0]) == [
                (one.notification_id, "processing"),
                (both.notification_id, "processing"),
            ]
            assert await timeline_of(sessionmaker, refund_nos[1]) == [
                (both.notification_id, "processing")
            ]

            # Named twice (two gateway refunds under one refund_no): news once, one line.
            twice = stripe_event(*[GatewayNotification(refund_nos[2], G.PROCESSING)] * 2)
            outcome, sent = await webhooks.accept(twice)
            assert (outcome, sent) == (Outcome.RECORDED, Sent(["SELECT", "SELECT", "WITH"], 1))
            assert await gateway_status(sessionmaker, refund_nos[2]) == "processing"
            assert await timeline_of(sessionmaker, refund_nos[2]) == [
                (twice.notification_id, "processing")
            ]
        finally:
            await forget(sessionmaker, refund_nos)


async def forget(sessionmaker: Sessions, refund_nos: list[str]) -> None:
    """The ledger rows' timeline and notifications, so that LedgerRows can remove them."""
    async with sessionmaker() as session:
        await session.execute(delete(RefundEvent).where(RefundEvent.refund_no.in_(refund_nos)))
        await session.execute(
            delete(GatewayNotificationRow).where(GatewayNotificationRow.refund_no.in_(refund_nos))
        )
        await session.commit()


async def test_a_notification_about_no_refund_of_ours_is_one_write_at_most_two(
    webhooks: Webhooks, sessionmaker: Sessions
) -> None:
    stranger = uid("rf-elsewhere")
    unknown = stripe_event(GatewayNotification(stranger, G.SUCCEEDED))
    outcome, sent = await webhooks.accept(unknown)
    assert (outcome, sent) == (Outcome.NOT_OURS, Sent(LOCK_THEN_WRITE, 1))
    assert await row_of(sessionmaker, unknown.notification_id) == (
        stranger,
        "succeeded",
        "not_ours",
    )

    none = stripe_event()  # another event type, or a refund made in the dashboard
    outcome, sent = await webhooks.accept(none)
    assert (outcome, sent) == (Outcome.NOT_OURS, Sent(["WITH"], 1))
    assert await row_of(sessionmaker, none.notification_id) == (None, None, "not_ours")


async def test_the_refunds_named_are_locked_in_refund_no_order_whatever_order_they_are_named_in(
    webhooks: Webhooks, sessionmaker: Sessions
) -> None:
    """Two notifications naming the same refunds in opposite orders (a charge's events list its
    refunds) would deadlock if each locked them as listed. While another transaction holds the
    first refund (in refund_no order), a notification listing the second first must wait on the
    first without having locked the second."""
    async with LedgerRows(sessionmaker) as rows:
        low, high = sorted(r.refund_no for r in await rows.refunds(*[RefundStatus.PROCESSING] * 2))
        try:
            async with sessionmaker() as blocker:
                await blocker.execute(
                    select(Refund.id).where(Refund.refund_no == low).with_for_update()
                )
                blocker_pid = await blocker.scalar(text("SELECT pg_backend_pid()"))
                listed = stripe_event(
                    GatewayNotification(high, G.PROCESSING), GatewayNotification(low, G.PROCESSING)
                )
                accepting = asyncio.create_task(webhooks.accept(listed))
                await waits_on(sessionmaker, blocker_pid)
                async with sessionmaker() as probe:
                    # Raises LockNotAvailable if the waiting notification holds `high`.
                    await probe.execute(
                        select(Refund.id)
                        .where(Refund.refund_no == high)
                        .with_for_update(nowait=True)
                    )
                    await probe.rollback()
                await blocker.rollback()
            outcome, _ = await asyncio.wait_for(accepting, 30)
            assert outcome == Outcome.RECORDED
            assert [await gateway_status(sessionmaker, no) for no in (low, high)] == [
                "processing",
                "processing",
            ]
            assert await row_of(sessionmaker, listed.notification_id) == (
                high,
                "processing",
                "recorded",
            )
        finally:
            await forget(sessionmaker, [low, high])


async def waits_on(sessionmaker: Sessions, blocker_pid: int, timeout: float = 10.0) -> None:
    """Until some backend waits for a lock the `blocker_pid` backend holds."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with sessionmaker() as session:
            if await session.scalar(query, {"pid": blocker_pid}):
                return
        assert asyncio.get_running_loop().time() < deadline, "the notification never waited"
        await asyncio.sleep(0.02)
