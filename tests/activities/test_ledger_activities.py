"""LedgerActivities.transition against the real PostgreSQL: the refund and the order's money move
together, once, and each move is one structured log line carrying the refund_no."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from activities.ledger import LedgerActivities
from activities.restore import RestoreActivities
from refunds.db.models import Order, Refund
from refunds.domain.messages import RefundStatus, TransitionInput
from refunds.runtime.logging import JsonFormatter
from tests.activities.ledger_support import Sessions, ledgers, run_all, seed_order, seed_refund


def lines(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, object]]:
    """The captured records with this message, as the JSON lines the service writes."""
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.getMessage() == message]


async def money(sessionmaker: Sessions, order: Order, refund_no: str) -> tuple[object, ...]:
    async with sessionmaker() as session:
        row = await session.get(Order, order.id)
        refund = await session.scalar(select(Refund).where(Refund.refund_no == refund_no))
        assert row is not None and refund is not None
        return (row.reserved_amount, row.refunded_amount, row.status, refund.status)


async def test_success_moves_the_money_once_and_logs_one_line(
    sessionmaker: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="refunds.ledger")
    order = await seed_order(sessionmaker, paid=4000)
    refund_no = await seed_refund(sessionmaker, order, 4000)
    move = TransitionInput(refund_no, RefundStatus.SUCCEEDED, "system", "succeeded", {})
    ledger = LedgerActivities(sessionmaker)

    assert await ledger.transition(move) == RefundStatus.SUCCEEDED
    once = await money(sessionmaker, order, refund_no)
    assert once == (4000, 4000, "refunded", "succeeded")
    assert await ledger.transition(move) == RefundStatus.SUCCEEDED  # a retried activity
    assert await money(sessionmaker, order, refund_no) == once

    [line] = lines(caplog, "refund_moved")
    assert (line["refund_no"], line["order_no"], line["amount"]) == (
        refund_no,
        order.order_no,
        4000,
    )
    assert (line["from_status"], line["to_status"], line["level"]) == (
        "processing",
        "succeeded",
        "info",
    )
    events = [e for e in (await ledgers(sessionmaker, order))["events"] if e[1] == "succeeded"]
    assert len(events) == 1


async def test_each_restore_logs_its_refund_no_and_kind_once(
    sessionmaker: Sessions, restore: RestoreActivities, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="refunds.restore")
    order = await seed_order(sessionmaker, points=40)
    refund_no = await seed_refund(sessionmaker, order, 10000)
    await run_all(restore, refund_no)
    await run_all(restore, refund_no)
    done = lines(caplog, "restore_done")
    assert sorted((d["refund_no"], d["kind"]) for d in done) == [
        (refund_no, "coupon"),
        (refund_no, "inventory"),
        (refund_no, "points"),
    ]
    [points] = [d for d in done if d["kind"] == "points"]
    assert points["detail"] == {"points": 40, "user_id": order.user_id, "completes_order": 1}
