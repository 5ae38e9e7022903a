"""The gateway status a refund has heard, and what became of each notification (issue 11), on
the real PostgreSQL with migrations applied: the webhook signals a workflow only with news."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg import sql
from sqlalchemy import create_engine, delete, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from activities.gateway import GatewayActivities
from refunds.db.engine import async_url
from refunds.db.migrate import alembic_config
from refunds.db.models import Base, GatewayNotificationRow
from refunds.db.repositories import (
    GatewayNotificationRepository,
    OrderRepository,
    RefundRepository,
)
from refunds.domain.messages import (
    Channel,
    GatewayRefund,
    GatewayStatus,
    RefundFacts,
    RefundSource,
    RefundStatus,
)
from refunds.domain.notifications import NotificationOutcome
from tests.db.ledger_rows import LedgerRows
from tests.db.test_reconciliations import Sessions
from tests.factories import uid

G = GatewayStatus


async def advance(sessionmaker: Sessions, refund_no: str, status: GatewayStatus) -> bool:
    """The gateway answers `status` for the refund, recorded as a gateway activity records a
    poll's answer (its own transaction, the refund's row locked); True when the status the refund
    has heard moved: when it was news."""
    before = await heard(sessionmaker, refund_no)
    async with sessionmaker() as session:
        refund = await RefundRepository(session).get(refund_no)
        payment_ref = await OrderRepository(session).payment_ref(refund.order_no)
    assert payment_ref is not None
    facts = RefundFacts(
        refund_no=refund.refund_no,
        order_no=refund.order_no,
        amount=refund.amount,
        currency=refund.currency,
        channel=Channel(refund.channel),
        payment_ref=payment_ref,
        total_amount=refund.amount,
        reason=refund.reason,
        requested_by=refund.requested_by,
        source=RefundSource(refund.source),
    )
    answer = GatewayRefund(
        refund_no=refund_no,
        gateway_refund_id=f"re_{refund_no}",
        status=status,
        amount=refund.amount,
        currency=refund.currency,
        payment_ref=payment_ref,
    )
    await GatewayActivities({}, sessionmaker)._heard(
        facts, answer, "gateway_polled", {"gateway_status": status}, uid("polled")
    )
    return await heard(sessionmaker, refund_no) != before


async def heard(sessionmaker: Sessions, refund_no: str) -> str | None:
    async with sessionmaker() as session:
        return (await RefundRepository(session).get(refund_no)).gateway_status


@pytest.mark.parametrize(
    "answers",
    [
        # (answer, news?) in the order they come; the status heard moves only with news.
        [(G.PROCESSING, True), (G.PROCESSING, False), (G.SUCCEEDED, True), (G.SUCCEEDED, False)],
        [(G.SUCCEEDED, True), (G.PROCESSING, False), (G.ABNORMAL, False)],  # out of order
        [(G.PROCESSING, True), (G.ABNORMAL, True), (G.PROCESSING, False), (G.FAILED, True)],
        [(G.SUCCEEDED, True), (G.FAILED, True), (G.FAILED, False), (G.SUCCEEDED, False)],
    ],
    ids=["forward-and-repeats", "backward-refused", "abnormal-then-failed", "late-failure"],
)
async def test_a_gateway_answer_records_its_status_only_when_it_is_news(
    sessionmaker: Sessions, answers: Sequence[tuple[GatewayStatus, bool]]
) -> None:
    async with LedgerRows(sessionmaker) as rows:
        [refund] = await rows.refunds(RefundStatus.PROCESSING)
        assert await heard(sessionmaker, refund.refund_no) is None
        last_news: GatewayStatus | None = None
        for status, news in answers:
            assert await advance(sessionmaker, refund.refund_no, status) is news, status
            last_news = status if news else last_news
            assert await heard(sessionmaker, refund.refund_no) == last_news


async def test_every_gateway_status_passes_the_database_check_and_others_are_refused(
    sessionmaker: Sessions,
) -> None:
    async with LedgerRows(sessionmaker) as rows:
        refund_nos = [r.refund_no for r in await rows.refunds(*[RefundStatus.PROCESSING] * 4)]
        for refund_no, status in zip(refund_nos, G, strict=True):
            assert await advance(sessionmaker, refund_no, status)
            assert await heard(sessionmaker, refund_no) == status
        async with sessionmaker() as session:
            refund = await RefundRepository(session).get(refund_nos[0], lock=True)
            refund.gateway_status = "paid"
            with pytest.raises(IntegrityError):
                await session.commit()


async def record(sessionmaker: Sessions, refund_no: str) -> int:
    async with sessionmaker() as session:
        row_id = await GatewayNotificationRepository(session).record(
            "stripe", uid("evt"), "refund.updated", refund_no, G.SUCCEEDED, {}
        )
        await session.commit()
    assert row_id is not None
    return row_id


async def outcome_of(sessionmaker: Sessions, row_id: int) -> str:
    async with sessionmaker() as session:
        row = await session.get(GatewayNotificationRow, row_id)
    assert row is not None
    return row.outcome


async def test_a_notification_is_recorded_once_and_every_outcome_passes_the_check(
    sessionmaker: Sessions,
) -> None:
    refund_no = uid("rf-foreign")
    row_id = await record(sessionmaker, refund_no)
    try:
        assert await outcome_of(sessionmaker, row_id) == NotificationOutcome.SIGNALLED  # default
        async with sessionmaker() as session:
            row = await session.get(GatewayNotificationRow, row_id)
            assert row is not None
            again = await GatewayNotificationRepository(session).record(
                row.gateway, row.notification_id, row.event_type, refund_no, None, {}
            )
        assert again is None
        for outcome in NotificationOutcome:
            async with sessionmaker() as session:
                await GatewayNotificationRepository(session).set_outcome(row_id, outcome)
                await session.commit()
            assert await outcome_of(sessionmaker, row_id) == outcome
        async with sessionmaker() as session:
            lost = update(GatewayNotificationRow).where(GatewayNotificationRow.id == row_id)
            with pytest.raises(IntegrityError):
                await session.execute(lost.values(outcome="lost"))
    finally:
        async with sessionmaker() as session:
            await session.execute(
                delete(GatewayNotificationRow).where(GatewayNotificationRow.refund_no == refund_no)
            )
            await session.commit()


def test_the_models_are_the_schema_the_migrations_make(database_url: str) -> None:
    """A column or index in one and not the other is a migration someone forgot (or a model
    change nobody migrated). CHECK bodies are compared by the tests above, value by value."""
    engine = create_engine(async_url(database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_server_default": True, "compare_type": True}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migration_0003_goes_down_to_0002_and_up_again(database_url: str) -> None:
    admin = make_url(database_url).set(drivername="postgresql")
    name = f"mig_{uuid.uuid4().hex[:12]}"
    fresh = admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            config = alembic_config(fresh)
            command.upgrade(config, "head")
            command.downgrade(config, "0002")
            with psycopg.connect(fresh) as db:
                columns = db.execute(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE column_name IN ('gateway_status', 'outcome')"
                ).fetchall()
            assert columns == []
            command.upgrade(config, "head")
        finally:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
