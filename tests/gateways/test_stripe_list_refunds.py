"""`StripeGateway.list_refunds` (reconciliation) against the Stripe sandbox over HTTP.

Each test backdates its refunds into a random day of the past (`past_day`), so the session's
shared sandbox holds no other refunds in its window.
"""

from __future__ import annotations

import pytest

from refunds.domain.errors import GatewayTransientError, GatewayUnknownError
from refunds.domain.messages import GatewayRefund, GatewayRefundPage, GatewayStatus
from refunds.gateways.base import ListsRefunds
from refunds.gateways.stripe_gateway import StripeGateway
from tests.gateways.test_stripe_gateway import refund_input
from tests.sandboxes.stripe_support import DAY, StripeStack, new_refund_no, past_day


async def refund_at(
    gateway: StripeGateway,
    stack: StripeStack,
    created: int,
    amount: int = 10,
    refund_no: str | None = None,
) -> GatewayRefund:
    """One of our refunds, on a payment of its own, created at `created` (unix seconds)."""
    refund = refund_input(stack.pay(1000), refund_no or new_refund_no(), amount)
    made = await gateway.create_refund(refund)
    stack.backdate(made.gateway_refund_id, created)
    return made


async def walk(gateway: ListsRefunds, start: int, end: int, limit: int) -> list[GatewayRefundPage]:
    """Every page of the window, as the reconciliation reads them."""
    pages = [await gateway.list_refunds(start, end, None, limit)]
    while (cursor := pages[-1].next_cursor) is not None:
        pages.append(await gateway.list_refunds(start, end, cursor, limit))
    return pages


def ids(pages: list[GatewayRefundPage]) -> list[str]:
    return [r.gateway_refund_id for page in pages for r in page.refunds]


def test_stripe_gateway_lists_refunds(gateway: StripeGateway):
    lister: ListsRefunds = gateway  # mypy checks the signature; isinstance only the name
    assert isinstance(lister, ListsRefunds)


async def test_window_holds_exactly_the_refunds_created_in_it_newest_first(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    start = past_day()
    end = start + DAY
    made = [
        await refund_at(gateway, stripe_stack, created)
        for created in (start - 1, start, start + 3_600, end - 1, end)
    ]
    [page] = await walk(gateway, start, end, limit=100)
    # [start, end): the second before and `end` itself belong to the neighbouring days.
    assert ids([page]) == [
        made[3].gateway_refund_id,
        made[2].gateway_refund_id,
        made[1].gateway_refund_id,
    ]
    assert page.next_cursor is None


@pytest.mark.parametrize("limit", [1, 2, 4, 6, 100])
async def test_pages_of_limit_walk_through_the_window_without_repeat_or_gap(
    gateway: StripeGateway, stripe_stack: StripeStack, limit: int
):
    start = past_day()
    # Ties within one second included: the cursor must order them the same way on every page.
    made = [await refund_at(gateway, stripe_stack, start + s) for s in (7, 7, 7, 9, 60, 60)]
    pages = await walk(gateway, start, start + DAY, limit)
    assert sorted(ids(pages)) == sorted(r.gateway_refund_id for r in made)
    assert len(ids(pages)) == len(made)  # no refund twice
    assert all(len(page.refunds) == limit for page in pages[:-1])
    assert len(pages) == -(-len(made) // limit)  # an exact multiple ends without an empty page


async def test_empty_window_is_one_empty_last_page(gateway: StripeGateway):
    start = past_day()
    assert await gateway.list_refunds(start, start + DAY, None) == GatewayRefundPage([], None)


async def test_refunds_made_outside_our_system_come_back_without_refund_no(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    start, client = past_day(), stripe_stack.client()
    dashboard = client.v1.refunds.create(params={"payment_intent": stripe_stack.pay(500)})
    other = client.v1.refunds.create(
        params={"payment_intent": stripe_stack.pay(500), "metadata": {"order_no": "ext-1"}}
    )
    for foreign in (dashboard, other):
        stripe_stack.backdate(foreign.id, start + 10)
    ours = await refund_at(gateway, stripe_stack, start + 20)
    [page] = await walk(gateway, start, start + DAY, limit=100)
    assert {(r.gateway_refund_id, r.refund_no) for r in page.refunds} == {
        (dashboard.id, ""),
        (other.id, ""),
        (ours.gateway_refund_id, ours.refund_no),
    }
    assert {r.amount for r in page.refunds if not r.refund_no} == {500}  # reported as-is


async def test_statuses_amounts_and_payments_are_reported_as_stripe_has_them(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    start, refund_nos = past_day(), [new_refund_no() for _ in range(3)]
    for refund_no in refund_nos:  # each moves only when told to
        stripe_stack.fault(refund_no=refund_no, action="pending_forever")
    pending, done, failed = [
        await refund_at(gateway, stripe_stack, start + i, 100 * (i + 1), refund_nos[i])
        for i in range(3)
    ]
    stripe_stack.control.post(
        f"/_sandbox/refunds/{done.gateway_refund_id}/succeed"
    ).raise_for_status()
    stripe_stack.control.post(
        f"/_sandbox/refunds/{failed.gateway_refund_id}/fail",
        json={"failure_reason": "lost_or_stolen_card"},
    ).raise_for_status()
    [page] = await walk(gateway, start, start + DAY, limit=100)
    got = {r.refund_no: r for r in page.refunds}
    assert got[pending.refund_no].status == GatewayStatus.PROCESSING
    assert got[done.refund_no].status == GatewayStatus.SUCCEEDED
    assert (got[failed.refund_no].status, got[failed.refund_no].failure_reason) == (
        GatewayStatus.FAILED,
        "lost_or_stolen_card",
    )
    assert [(r.amount, r.currency, r.payment_ref) for r in page.refunds] == [
        (m.amount, "USD", m.payment_ref) for m in (failed, done, pending)
    ]
    assert all(m.payment_ref and m.payment_ref.startswith("pi_") for m in (pending, done, failed))


async def test_list_answered_500_is_unknown_and_429_transient(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    start = past_day()
    stripe_stack.fault(method="GET", path_prefix="/v1/refunds", action="http_500")
    with pytest.raises(GatewayUnknownError):
        await gateway.list_refunds(start, start + DAY, None)
    stripe_stack.fault(method="GET", path_prefix="/v1/refunds", action="rate_limit")
    with pytest.raises(GatewayTransientError, match="RateLimitError") as raised:
        await gateway.list_refunds(start, start + DAY, None)
    assert not isinstance(raised.value, GatewayUnknownError)
