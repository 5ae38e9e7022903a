"""The worker's database work per refund, pinned (issue 11): each step of a happy refund sends
the statements listed here, writes what it should exactly once, and the same step retried (its
result lost) changes nothing. The activities run as Temporal runs them (ActivityEnvironment),
on the session's real PostgreSQL; the pool's pings (an engine setting) are not counted."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.gateway import GatewayActivities
from activities.ledger import LedgerActivities, facts_of
from activities.restore import RestoreActivities
from refunds.db.models import Order, OutgoingEvent, RefundEvent
from refunds.db.outbox import refund_payload
from refunds.db.records import Records, RefundRecord
from refunds.domain.messages import (
    GatewayRefund,
    GatewayStatus,
    RefundFacts,
    RefundRequest,
    RefundSource,
    RefundStatus,
    Step,
)
from tests.activities.ledger_support import Sessions, ledgers, seed_order, seed_refund, timeline
from tests.db.statement_log import StatementLog
from tests.factories import uid

LOCK_REFUND = "SELECT refunds FOR UPDATE"
MOVE = "WITH move, timeline, event: INSERT event_deliveries"
SUCCEED = (
    "WITH points, restock, movements, claims, money, move, timeline, event: INSERT event_deliveries"
)
ONLY_THE_LOCK = ["BEGIN", LOCK_REFUND, "COMMIT"]


def as_activity(activity_type: str, run_id: str) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = replace(env.info, activity_type=activity_type, workflow_run_id=run_id)
    return env


async def snapshot(sessionmaker: Sessions, order: Order, refund_no: str) -> dict[str, Any]:
    """Every row a refund's steps write: the ledgers, the order's money, the refund's row, its
    timeline and its outgoing events, each in the order written."""
    async with sessionmaker() as session:
        money = await session.execute(
            select(Order.reserved_amount, Order.refunded_amount, Order.status).where(
                Order.id == order.id
            )
        )
        entries = await session.scalars(
            select(RefundEvent.event).where(RefundEvent.refund_no == refund_no).order_by("id")
        )
        events = await session.execute(
            select(OutgoingEvent.type, OutgoingEvent.sequence, OutgoingEvent.payload)
            .where(OutgoingEvent.refund_no == refund_no)
            .order_by(OutgoingEvent.id)
        )
        return {
            **await ledgers(sessionmaker, order),
            "money": tuple(money.one()),
            "refund": await Records(session).refund(refund_no),
            "timeline": list(entries.all()),
            "outbox": [(t, s, p["refund"]["status"]) for t, s, p in events.all()],
        }


async def test_a_happy_refund_is_these_statements_and_a_retried_step_changes_nothing(
    sessionmaker: Sessions,
) -> None:
    sku = uid("sku")
    order = await seed_order(sessionmaker, paid=1000, items=[(sku, 1)])
    ledger, restore = LedgerActivities(sessionmaker), RestoreActivities(sessionmaker)
    gateway = GatewayActivities({}, sessionmaker)
    no, run_id, log = uid("rf"), uid("run"), StatementLog()
    request = RefundRequest(no, order.order_no, 1000, "test", order.user_id, RefundSource.CUSTOMER)

    async def twice(activity_type: str, fn: Any, *args: Any) -> Any:
        """The step, then the same step again, as a retry after its result was lost."""
        env = as_activity(activity_type, run_id)
        with log.on(sessionmaker.kw["bind"]):
            first = await env.run(fn, *args)
        after_first = await snapshot(sessionmaker, order, no)
        with log.on(sessionmaker.kw["bind"]):
            again = await env.run(fn, *args)
        assert await snapshot(sessionmaker, order, no) == after_first, activity_type
        assert again == first
        return first

    applied = await twice("open_refund", ledger.open_refund, request)
    approve = Step(applied.facts, "approver-1", "approved", {"note": "ok"}, RefundStatus.PROCESSING)
    approved = await twice("record_step", ledger.record_step, approve)
    answer = GatewayRefund(
        no, "re_1", GatewayStatus.PROCESSING, 1000, "usd", None, applied.facts.payment_ref
    )
    heard = ({"gateway_refund_id": "re_1", "gateway_status": "pending"}, f"{no}:submitted")
    await twice(
        "refund_at_gateway", gateway._heard, applied.facts, answer, "gateway_submitted", *heard
    )
    succeed = Step(applied.facts, "system", "succeeded", {"via": "webhook"}, RefundStatus.SUCCEEDED)
    done = await twice("complete_refund", restore.complete_refund, succeed)

    assert log.labels("open_refund") == [
        "BEGIN",
        "SELECT orders FOR UPDATE",
        "UPDATE orders",
        "WITH new_refund, timeline, event: INSERT event_deliveries",
        "COMMIT",
    ] + ["BEGIN", "SELECT orders FOR UPDATE", "SELECT refunds", "COMMIT"]  # the replay
    assert log.labels("record_step") == ["BEGIN", LOCK_REFUND, MOVE, "COMMIT", *ONLY_THE_LOCK]
    assert log.labels("refund_at_gateway") == [
        *("BEGIN", LOCK_REFUND, "WITH gateway: INSERT refund_events", "COMMIT"),
        *("BEGIN", LOCK_REFUND, "INSERT refund_events", "COMMIT"),  # no news: no status
    ]
    assert log.labels("complete_refund") == [
        *("BEGIN", LOCK_REFUND, "SELECT orders FOR UPDATE", "SELECT restore facts", SUCCEED),
        *("COMMIT", *ONLY_THE_LOCK),
    ]

    rows = await snapshot(sessionmaker, order, no)
    refund: RefundRecord = rows["refund"]
    assert (applied.row.status, approved.status, done.status) == (
        RefundStatus.PENDING_APPROVAL,
        RefundStatus.PROCESSING,
        RefundStatus.SUCCEEDED,
    )
    assert (refund.status, refund.approved_by, refund.event_sequence) == (
        "succeeded",
        "approver-1",
        3,
    )
    assert (refund.gateway_refund_id, refund.gateway_status) == ("re_1", "processing")
    assert refund.completed_at is not None and done.completed_at is not None
    assert datetime.fromisoformat(done.completed_at) == refund.completed_at
    assert rows["money"] == (1000, 1000, "refunded")
    assert rows["timeline"] == [
        "requested",
        "approved",
        "gateway_submitted",
        "points_restored",
        "inventory_restocked",
        "succeeded",
    ]
    assert [kind for _, kind, _ in rows["restorations"]] == ["coupon", "inventory", "points"]
    assert rows["points"] == [(no, "refund_restore", 0)]
    assert (rows["stock"], rows["movements"]) == ([(sku, 1)], [(no, sku, 1)])
    assert rows["outbox"] == [
        ("refund.created", 1, "pending_approval"),
        ("refund.approved", 2, "processing"),
        ("refund.succeeded", 3, "succeeded"),
    ]
    async with sessionmaker() as session:
        last = await session.scalar(
            select(OutgoingEvent.payload).where(
                OutgoingEvent.refund_no == no, OutgoingEvent.sequence == 3
            )
        )
    assert last == {"refund": refund_payload(refund)}


async def _facts(sessionmaker: Sessions, refund_no: str) -> RefundFacts:
    async with sessionmaker() as session:
        refund = await Records(session).refund(refund_no)
        return facts_of(await Records(session).order(refund.order_no), refund)


async def test_completing_a_shipped_order_with_points_and_a_coupon_is_one_write(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    order = await seed_order(
        sessionmaker, paid=3000, points=70, coupon=True, fulfillment="shipped", items=[("x", 1)]
    )
    no = await seed_refund(sessionmaker, order, 3000)
    step = Step(await _facts(sessionmaker, no), "system", "succeeded", {}, RefundStatus.SUCCEEDED)
    log = StatementLog()
    with log.on(sessionmaker.kw["bind"]):
        done = await as_activity("complete_refund", uid("run")).run(restore.complete_refund, step)
    assert log.labels() == [
        *("BEGIN", LOCK_REFUND, "SELECT orders FOR UPDATE", "SELECT restore facts"),
        "WITH points, coupon, claims, money, move, timeline, event: INSERT event_deliveries",
        "COMMIT",
    ]
    rows = await snapshot(sessionmaker, order, no)
    assert done.needs_manual_return and rows["refund"].needs_manual_return
    assert rows["timeline"] == [
        "points_restored",
        "needs_manual_return",
        "coupon_released",
        "succeeded",
    ]
    assert rows["points"] == [(no, "refund_restore", 70)]
    assert (rows["coupon"], rows["stock"], rows["movements"]) == ([("available", no)], [], [])
    assert rows["money"] == (3000, 3000, "refunded")
    assert rows["outbox"] == [("refund.succeeded", 1, "succeeded")]


async def test_two_refunds_of_one_order_completed_at_once_restore_exactly_what_it_consumed(
    sessionmaker: Sessions, restore: RestoreActivities
) -> None:
    sku = uid("sku")
    order = await seed_order(sessionmaker, paid=10000, points=101, coupon=True, items=[(sku, 4)])
    first = await seed_refund(sessionmaker, order, 4000, items=[(sku, 1)])
    second = await seed_refund(sessionmaker, order, 6000, items=[(sku, 3)])

    async def complete(no: str) -> RefundStatus:
        facts = await _facts(sessionmaker, no)
        step = Step(facts, "system", "succeeded", {}, RefundStatus.SUCCEEDED)
        env = as_activity("complete_refund", uid("run"))
        return (await env.run(restore.complete_refund, step)).status

    # Both lock their refund, then the order: one waits for the other, neither deadlocks.
    assert await asyncio.gather(complete(first), complete(second)) == [RefundStatus.SUCCEEDED] * 2
    state = await ledgers(sessionmaker, order)
    assert sum(points for _, _, points in state["points"]) == 101
    assert state["stock"] == [(sku, 4)]
    assert state["coupon"] in ([("available", first)], [("available", second)])
    assert "coupon_released" in timeline(state, state["coupon"][0][1])
    async with sessionmaker() as session:
        money = await session.execute(
            select(Order.reserved_amount, Order.refunded_amount, Order.status).where(
                Order.id == order.id
            )
        )
        assert tuple(money.one()) == (10000, 10000, "refunded")
