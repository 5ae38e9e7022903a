"""The approval timer and an approval landing at the same moment (issue 8 §6).

Many refunds with a short approval timeout, each approved at the edge of its timeout (a little
before, at, a little after): each ends either approved and paid or expired and released, with
the approver told which; never both, never a failed workflow.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx

from tests.e2e.support import api_with
from tests.factories import Shop, events, uid

TIMEOUT = 1.5
# Offsets from the timeout at which the approval is sent: both sides of the edge, and on it.
OFFSETS = [-0.5, -0.3, -0.15, -0.08, -0.04, -0.02, 0.0, 0.0, 0.01, 0.02, 0.04, 0.08, 0.15, 0.5]


async def approve_at_the_edge(
    shop: Shop, api: httpx.AsyncClient, order: dict[str, Any], offset: float
) -> tuple[str, int]:
    refund_no = uid("rf")
    response = await api.post(
        "/v1/refunds",
        headers=shop.customer,
        json={"order_no": order["order_no"], "amount": 100, "refund_no": refund_no},
    )
    assert response.status_code == 202, response.text
    await asyncio.sleep(TIMEOUT + offset)
    approved = await shop.approve(refund_no)
    assert approved.status_code in (200, 409), approved.text
    if approved.status_code == 409:
        assert approved.json()["error"]["code"] == "refund_not_pending_approval"
    return refund_no, approved.status_code


async def test_a_refund_approved_at_its_timeout_is_either_approved_or_expired_never_both(
    shop: Shop,
) -> None:
    order = await shop.order(amount=100 * len(OFFSETS))
    started = time.monotonic()
    async with api_with(shop, approval_timeout=timedelta(seconds=TIMEOUT)) as api:
        outcomes = await asyncio.gather(
            *(approve_at_the_edge(shop, api, order, offset) for offset in OFFSETS)
        )
    assert time.monotonic() - started < 60
    seen = set()
    for refund_no, answer in outcomes:
        final = await shop.wait_status(refund_no, "succeeded", "expired", timeout=60)
        moves = events(final)
        assert not ("approved" in moves and "expired" in moves), moves
        if answer == 200:
            assert (final["status"], moves.count("approved")) == ("succeeded", 1), moves
        else:
            assert (final["status"], moves.count("expired")) == ("expired", 1), moves
        seen.add(final["status"])
    # The edge was really straddled: both outcomes happened.
    assert seen == {"succeeded", "expired"}
    after = await shop.get_order(order["order_no"])
    paid_back = 100 * sum(1 for _, answer in outcomes if answer == 200)
    assert (after["refunded_amount"], after["reserved_amount"]) == (paid_back, paid_back)


async def test_timer_fired_and_approval_waiting_in_the_same_workflow_task_never_both(
    shop: Shop,
) -> None:
    """Forced coincidence: with no worker, the timer fires and an approval queues up; the next
    workflow task carries both. The refund is either approved or expired, and says which."""
    order = await shop.order(amount=1000)
    refund_no = uid("rf")
    async with api_with(shop, approval_timeout=timedelta(seconds=1)) as api:
        response = await api.post(
            "/v1/refunds",
            headers=shop.customer,
            json={"order_no": order["order_no"], "amount": 1000, "refund_no": refund_no},
        )
        assert response.status_code == 202, response.text
        shop.stack.kill_worker()
        try:
            await asyncio.sleep(2.5)  # the timer fires at the server; nobody runs the workflow
            approving = asyncio.create_task(shop.approve(refund_no))
            await asyncio.sleep(1.0)  # the update waits at the server for the next task
        finally:
            shop.stack.worker.start()
        answer = await approving
    final = await shop.wait_status(refund_no, "succeeded", "expired", timeout=60)
    moves = events(final)
    assert not ("approved" in moves and "expired" in moves), moves
    expected = "succeeded" if answer.status_code == 200 else "expired"
    assert final["status"] == expected, (answer.text, moves)
    after = await shop.get_order(order["order_no"])
    paid_back = 1000 if expected == "succeeded" else 0
    assert (after["refunded_amount"], after["reserved_amount"]) == (paid_back, paid_back)
