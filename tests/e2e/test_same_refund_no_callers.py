"""Two callers, one refund_no, before its row exists (issue 8 §5).

The second request attaches to the first one's workflow (Update-with-Start, USE_EXISTING): the
`apply` update carries the caller's request, so another body is 409 and another customer is 404,
and nobody receives someone else's refund.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.service import RPCError

from refunds.db.models import Refund
from tests.e2e.support import Sessions, order_locked
from tests.factories import Shop, uid
from workflows.refund import workflow_id


async def refund_rows(sessionmaker: Sessions, refund_no: str) -> list[tuple[str, int]]:
    async with sessionmaker() as session:
        stmt = select(Refund.requested_by, Refund.amount).where(Refund.refund_no == refund_no)
        return [(who, amount) for who, amount in (await session.execute(stmt)).all()]


async def wait_for_workflow(temporal: Client, refund_no: str) -> None:
    """The first request is in flight: its workflow runs, its apply waits for our lock."""
    handle = temporal.get_workflow_handle(workflow_id(refund_no))
    for _ in range(100):
        try:
            await handle.describe()
            return
        except RPCError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"no workflow for {refund_no}")


async def test_second_caller_with_the_same_refund_no_in_flight_never_gets_the_first_ones_refund(
    shop: Shop, sessionmaker: Sessions, temporal: Client
) -> None:
    order = await shop.order(amount=6000)
    other = Shop.open(shop.stack, shop.http)
    others_order = await other.order(amount=6000)
    refund_no = uid("rf")
    body = {"order_no": order["order_no"], "amount": 2000, "refund_no": refund_no, "reason": "a"}
    async with order_locked(sessionmaker, order["order_no"]):
        first = asyncio.create_task(shop.http.post("/v1/refunds", json=body, headers=shop.customer))
        await wait_for_workflow(temporal, refund_no)
        assert not first.done()
        assert await refund_rows(sessionmaker, refund_no) == []
        # Both reach the running workflow (no row yet for the API to answer from).
        stranger, other_body = await asyncio.gather(
            other.request_refund(others_order, 2000, refund_no=refund_no),
            shop.request_refund(order, 1000, refund_no=refund_no, reason="a"),
        )
    assert stranger.status_code == 404, stranger.text
    assert stranger.json()["error"]["code"] == "refund_not_found"
    assert order["order_no"] not in stranger.text
    assert other_body.status_code == 409, other_body.text
    assert other_body.json()["error"]["code"] == "refund_conflict"
    answered = await first
    assert answered.status_code == 202, answered.text
    # The customer's own view names them "you"; the row holds their principal id.
    assert (answered.json()["amount"], answered.json()["requested_by"]) == (2000, "you")
    same = await shop.http.post("/v1/refunds", json=body, headers=shop.customer)
    assert (same.status_code, same.json()["refund_no"]) == (202, refund_no)
    assert await refund_rows(sessionmaker, refund_no) == [(shop.customer_id, 2000)]
    assert (await shop.get_order(order["order_no"]))["reserved_amount"] == 2000
    assert (await other.get_order(others_order["order_no"]))["reserved_amount"] == 0


async def test_same_request_twice_in_flight_is_one_refund(
    shop: Shop, sessionmaker: Sessions, temporal: Client
) -> None:
    order = await shop.order(amount=3000)
    refund_no = uid("rf")
    body = {"order_no": order["order_no"], "amount": 3000, "refund_no": refund_no}
    async with order_locked(sessionmaker, order["order_no"]):
        calls = [
            asyncio.create_task(shop.http.post("/v1/refunds", json=body, headers=shop.customer))
            for _ in range(2)
        ]
        await wait_for_workflow(temporal, refund_no)
        await asyncio.sleep(1)
    answers = await asyncio.gather(*calls)
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert {a.json()["refund_no"] for a in answers} == {refund_no}
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Refund).where(Refund.order_no == order["order_no"])
        )
    assert count == 1
    assert (await shop.get_order(order["order_no"]))["reserved_amount"] == 3000
