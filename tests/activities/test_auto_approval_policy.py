"""The auto-approval policy in the apply step, on the real PostgreSQL: it approves a refund only
while the sums it approved stay within the limit, per order and per requester per UTC day, a
retried apply answers the decision taken the first time, a failed refund gives its share back,
and the requester's day is serialized by a lock the apply waits for."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.ledger import LedgerActivities
from refunds.db.models import Order, Refund, RefundEvent
from refunds.db.records import Records
from refunds.domain.approval_policy import day_of, lock_key
from refunds.domain.messages import Applied, RefundRequest, RefundSource, RefundStatus, Step
from tests.activities.ledger_support import Sessions, seed_order
from tests.factories import uid

LIMIT = 5000


def as_activity(activity_type: str) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = replace(env.info, activity_type=activity_type, workflow_run_id=uid("run"))
    return env


def admin_request(order: Order, amount: int, admin: str, **fields: Any) -> RefundRequest:
    return RefundRequest(
        uid("rf"),
        order.order_no,
        amount,
        "test",
        admin,
        RefundSource.ADMIN,
        auto_approve_limit=LIMIT,
        **fields,
    )


async def apply(ledger: LedgerActivities, request: RefundRequest) -> Applied:
    applied: Applied = await as_activity("open_refund").run(ledger.open_refund, request)
    return applied


async def declined(sessionmaker: Sessions, refund_no: str) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(RefundEvent.detail).where(
                RefundEvent.refund_no == refund_no,
                RefundEvent.actor == "policy",
                RefundEvent.event == "auto_approval_declined",
            )
        )
        return list(rows.all())


async def test_four_refunds_at_the_limit_on_one_order_approve_only_the_first(
    sessionmaker: Sessions,
) -> None:
    order = await seed_order(sessionmaker, paid=4 * LIMIT)
    ledger, admin = LedgerActivities(sessionmaker), uid("admin")
    requests = [admin_request(order, LIMIT, admin) for _ in range(4)]
    applied = [await apply(ledger, r) for r in requests]

    assert [a.auto_approved for a in applied] == [True, False, False, False]
    assert [a.row.status for a in applied] == [RefundStatus.PENDING_APPROVAL] * 4
    assert (await apply(ledger, requests[0])).auto_approved  # a retried apply: the same answer
    assert not (await apply(ledger, requests[1])).auto_approved
    assert await declined(sessionmaker, requests[0].refund_no) == []
    assert await declined(sessionmaker, requests[1].refund_no) == [
        {
            "limit_policy": "REFUNDS_AUTO_APPROVE_LIMIT",
            "limit": LIMIT,
            "currency": "USD",
            "approved_on_order": LIMIT,
            "approved_by_requester_today": LIMIT,
            "remaining": 0,
        }
    ]
    async with sessionmaker() as session:
        flags = await session.scalars(
            select(Refund.auto_approved).where(Refund.order_no == order.order_no).order_by("id")
        )
        assert list(flags.all()) == [True, False, False, False]


async def test_the_requester_sum_spans_orders_and_another_requester_has_their_own(
    sessionmaker: Sessions,
) -> None:
    first, second = [await seed_order(sessionmaker, paid=2 * LIMIT) for _ in range(2)]
    ledger, admin = LedgerActivities(sessionmaker), uid("admin")

    assert (await apply(ledger, admin_request(first, 3000, admin))).auto_approved
    over = admin_request(second, 2001, admin)
    assert not (await apply(ledger, over)).auto_approved
    [why] = await declined(sessionmaker, over.refund_no)
    assert (why["approved_on_order"], why["approved_by_requester_today"]) == (0, 3000)
    assert why["remaining"] == 2000
    assert (await apply(ledger, admin_request(second, 2000, admin))).auto_approved
    # The order's sum still binds another admin: 5000 on `first` leaves it nothing.
    other = uid("admin")
    assert (await apply(ledger, admin_request(first, 2000, other))).auto_approved
    assert not (await apply(ledger, admin_request(first, 1, other))).auto_approved


async def test_a_failed_policy_refund_gives_its_share_back(sessionmaker: Sessions) -> None:
    order = await seed_order(sessionmaker, paid=2 * LIMIT)
    ledger, admin = LedgerActivities(sessionmaker), uid("admin")
    first = await apply(ledger, admin_request(order, LIMIT, admin))
    assert first.auto_approved
    env = as_activity("record_step")
    for to, event in ((RefundStatus.PROCESSING, "auto_approved"), (RefundStatus.FAILED, "failed")):
        await env.run(ledger.record_step, Step(first.facts, "policy", event, {}, to))

    again = await apply(ledger, admin_request(order, LIMIT, admin))
    assert again.auto_approved  # the failed one moved no money: the order may use it again
    async with sessionmaker() as session:
        row = await session.get(Order, order.id)
        assert row is not None and row.reserved_amount == LIMIT


async def test_an_apply_waits_for_the_requester_lock_and_counts_what_its_holder_committed(
    sessionmaker: Sessions,
) -> None:
    """Another apply by the same admin on another order holds the day's lock and has written a
    policy refund of the whole limit, not committed yet: this apply waits, then declines. Read
    without the lock, the uncommitted row is invisible and it would approve past the limit."""
    holder_order, order = [await seed_order(sessionmaker, paid=LIMIT) for _ in range(2)]
    ledger, admin = LedgerActivities(sessionmaker), uid("admin")
    async with sessionmaker.begin() as session:
        await Records(session).lock_policy(lock_key(admin, "USD", day_of(datetime.now(UTC))))
        session.add(policy_refund(holder_order, admin))
        await session.flush()
        waiting = asyncio.create_task(apply(ledger, admin_request(order, 1, admin)))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # blocked on the lock, not on any row
    assert not (await asyncio.wait_for(waiting, 10)).auto_approved


def policy_refund(order: Order, admin: str) -> Refund:
    return Refund(
        refund_no=uid("rf"),
        order_no=order.order_no,
        amount=LIMIT,
        currency=order.currency,
        channel=order.channel,
        reason="test",
        items=[],
        source="admin",
        requested_by=admin,
        status="processing",
        request_fingerprint=uid("fp"),
        needs_manual_return=False,
        auto_approved=True,
    )
