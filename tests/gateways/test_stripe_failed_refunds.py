"""`StripeGateway.list_failed_refunds` (reconciliation's late failures) against the Stripe
sandbox over HTTP: read from the `refund.failed` events of a window, whatever day the refund
was created."""

from __future__ import annotations

import time

from refunds.domain.messages import GatewayStatus
from refunds.gateways.base import ListsFailedRefunds
from refunds.gateways.stripe_gateway import StripeGateway
from tests.gateways.test_stripe_gateway import refund_input
from tests.sandboxes.stripe_support import DAY, StripeStack, new_refund_no


async def failed_late(gateway: StripeGateway, stack: StripeStack, created: int) -> str:
    """One of ours, created at `created`, succeeded, then failed now: its refund_no."""
    refund_no = new_refund_no()
    stack.fault(refund_no=refund_no, action="pending_forever")
    made = await gateway.create_refund(refund_input(stack.pay(1000), refund_no, 400))
    stack.backdate(made.gateway_refund_id, created)
    stack.control.post(f"/_sandbox/refunds/{made.gateway_refund_id}/succeed").raise_for_status()
    stack.control.post(f"/_sandbox/refunds/{made.gateway_refund_id}/fail").raise_for_status()
    return refund_no


def test_stripe_gateway_lists_failed_refunds(gateway: StripeGateway):
    lister: ListsFailedRefunds = gateway
    assert isinstance(lister, ListsFailedRefunds)


async def test_a_refund_created_days_ago_that_failed_in_the_window_is_listed_failed(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    since = int(time.time()) - 1
    refund_no = await failed_late(gateway, stripe_stack, since - 5 * DAY)
    page = await gateway.list_failed_refunds(since, int(time.time()) + 2, None, 100)
    [found] = [r for r in page.refunds if r.refund_no == refund_no]
    assert (found.status, found.amount, found.currency) == (GatewayStatus.FAILED, 400, "USD")
    assert found.failure_reason and found.payment_ref
    # A window before the failure does not hold it, though the refund was created then.
    earlier = await gateway.list_failed_refunds(since - 6 * DAY, since, None, 100)
    assert refund_no not in {r.refund_no for r in earlier.refunds}


async def test_failed_refunds_page_through_the_window_without_repeat_or_gap(
    gateway: StripeGateway, stripe_stack: StripeStack
):
    since = int(time.time()) - 1
    mine = {await failed_late(gateway, stripe_stack, since) for _ in range(3)}
    end, cursor, seen, pages = int(time.time()) + 2, None, [], 0
    while True:
        page = await gateway.list_failed_refunds(since, end, cursor, 1)
        seen += [r.refund_no for r in page.refunds]
        pages, cursor = pages + 1, page.next_cursor
        if cursor is None:
            break
    assert mine <= set(seen) and len(seen) == len(set(seen)) and pages >= 3
