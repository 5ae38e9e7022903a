"""REFUNDS_AUTO_APPROVE_LIMIT bounds what the policy approves summed, through the real stack
(HTTP API → workflow → PostgreSQL → the Stripe sandbox): per order, per admin per day across
orders, and under concurrent applies; what it declines waits for an approver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.e2e.support import timeline
from tests.factories import Shop, events
from tests.stack import Stack

LIMIT = 5000


@pytest.fixture(scope="module")
def lenient_api(stack: Stack) -> str:
    return stack.api(stack.settings.model_copy(update={"auto_approve_limit": {"USD": LIMIT}}))


@pytest_asyncio.fixture
async def lenient(lenient_api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=lenient_api, timeout=60) as http:
        yield http


async def apply(
    http: httpx.AsyncClient, shop: Shop, order: dict[str, Any], amount: int
) -> dict[str, Any]:
    body = {"order_no": order["order_no"], "amount": amount, "reason": "policy"}
    response = await http.post("/v1/refunds", json=body, headers=shop.admin)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def test_four_refunds_at_the_limit_on_one_order_auto_approve_only_the_first(
    shop: Shop, lenient: httpx.AsyncClient
) -> None:
    order = await shop.order(amount=4 * LIMIT)
    applied = [await apply(lenient, shop, order, LIMIT) for _ in range(4)]

    assert [a["status"] for a in applied] == ["processing"] + ["pending_approval"] * 3
    first = await shop.wait_status(applied[0]["refund_no"], "succeeded")
    assert "auto_approved" in events(first)
    for waiting in applied[1:]:
        refund = await shop.get_refund(waiting["refund_no"])
        assert refund["status"] == "pending_approval"
        [why] = timeline(refund, "auto_approval_declined")
        assert why["actor"] == "policy"
        assert (why["detail"]["remaining"], why["detail"]["approved_on_order"]) == (0, LIMIT)
    after = await shop.get_order(order["order_no"])
    assert (after["refunded_amount"], after["status"]) == (LIMIT, "paid")
    # What the policy declined an approver may still approve: it waits, it is not refused.
    assert (await shop.approve(applied[1]["refund_no"])).status_code == 200
    await shop.wait_status(applied[1]["refund_no"], "succeeded")


async def test_one_admin_s_policy_refunds_of_a_day_are_summed_across_orders(
    shop: Shop, lenient: httpx.AsyncClient
) -> None:
    first, second = await shop.order(amount=LIMIT), await shop.order(amount=LIMIT)
    assert (await apply(lenient, shop, first, 3000))["status"] == "processing"
    over = await apply(lenient, shop, second, 2001)
    assert over["status"] == "pending_approval"
    [why] = timeline(await shop.get_refund(over["refund_no"]), "auto_approval_declined")
    assert (why["detail"]["approved_by_requester_today"], why["detail"]["remaining"]) == (
        3000,
        2000,
    )
    assert (await apply(lenient, shop, second, 2000))["status"] == "processing"


async def test_concurrent_applies_over_the_limit_auto_approve_only_those_that_fit(
    shop: Shop, lenient: httpx.AsyncClient
) -> None:
    """Three orders, one admin, 3000 each at once under a limit of 5000: exactly one fits; and
    three at once on one order (its row lock) likewise."""
    orders = [await shop.order(amount=LIMIT) for _ in range(3)]
    across = await asyncio.gather(*(apply(lenient, shop, o, 3000) for o in orders))
    assert sorted(a["status"] for a in across) == ["pending_approval"] * 2 + ["processing"]

    other = Shop.open(shop.stack, shop.http)  # another admin: a day of their own
    order = await other.order(amount=3 * 3000)
    on_one = await asyncio.gather(*(apply(lenient, other, order, 3000) for _ in range(3)))
    assert sorted(a["status"] for a in on_one) == ["pending_approval"] * 2 + ["processing"]
    for applied in [*across, *on_one]:
        if applied["status"] == "processing":
            done = await shop.wait_status(applied["refund_no"], "succeeded")
            assert done["amount"] == 3000 and "auto_approved" in events(done)
